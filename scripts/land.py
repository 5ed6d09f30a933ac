"""Drop local files into the streaming job's landing prefix ([stream] landing, LANDING_PATH),
as an upstream system would: one PUT per file, so the stream never sees half a file.

    .venv/bin/python -m scripts.land FILE [FILE ...]      (make land FILES=...)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from botocore.exceptions import BotoCoreError, ClientError

from jobs.adapters.object_store import s3_client, split_path
from jobs.config.settings import load_settings
from jobs.core.errors import EnrichmentError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="land", description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except EnrichmentError as error:
        print(f"land: error: {error}", file=sys.stderr)
        return 2
    bucket, prefix = split_path(settings.stream.landing)
    client = s3_client(settings.s3)
    for file in args.files:
        if not file.is_file():
            print(f"land: error: {file} is not a file", file=sys.stderr)
            return 2
        key = f"{prefix}/{file.name}"
        try:
            client.upload_file(str(file), bucket, key)
        except (BotoCoreError, ClientError) as error:
            print(
                f"land: error: could not upload {file} to s3a://{bucket}/{key}: {error}",
                file=sys.stderr,
            )
            return 4
        print(f"landed {file} as s3a://{bucket}/{key}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
