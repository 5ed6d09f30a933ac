"""Generate realistic raw transactions for demos, tests and benchmarks (no Spark needed).

    python -m scripts.generate_transactions --rows 20000 --output data/batch.csv [--seed 7]

Mix: mostly known merchants (the three samples and MER-000001..MER-010000 seeded by
reference_sql/), some unknown merchants, a few invalid rows of every kind the batch job
quarantines, a malformed line, and repeated transaction ids.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from jobs.core.schemas import INPUT_COLUMNS

SAMPLE_MERCHANTS = ("MER-ABC", "MER-XYZ", "MER-123")
GENERATED_MERCHANTS = 10_000
UNKNOWN_MERCHANTS = tuple(f"MER-UNK-{n:03d}" for n in range(1, 41))
CURRENCIES = (("USD", 60), ("EUR", 25), ("GBP", 10), ("JPY", 5))
INVALID_KINDS = (
    "negative_amount",
    "zero_amount",
    "missing_transaction_id",
    "missing_merchant_id",
    "unknown_currency",
    "bad_timestamp",
    "bad_amount",
    "future_timestamp",
    "malformed_line",
)


@dataclass(frozen=True)
class Mix:
    unknown_share: float = 0.07
    invalid_share: float = 0.03
    duplicate_share: float = 0.01
    known_merchants: int = GENERATED_MERCHANTS  # draws from MER-000001 .. MER-<this>


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="generate_transactions", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--rows", type=int, required=True, help="number of lines to write")
    parser.add_argument("--output", type=Path, required=True, help="file to write (.csv or .jsonl)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random)")
    parser.add_argument("--start", default="2026-11-01", help="first event date (UTC)")
    parser.add_argument("--days", type=int, default=14, help="days the events spread over")
    parser.add_argument("--clean", action="store_true", help="no invalid rows or duplicates")
    parser.add_argument(
        "--merchants",
        type=int,
        default=GENERATED_MERCHANTS,
        help=f"known merchants drawn from, MER-000001 up (default {GENERATED_MERCHANTS:,}, "
        "the ones reference_sql/ seeds)",
    )
    args = parser.parse_args(argv)
    if args.rows < 0:
        parser.error("--rows must be >= 0")
    if args.merchants < 1:
        parser.error("--merchants must be >= 1")
    return args


def _amount(rng: random.Random, currency: str) -> str:
    value = round(rng.lognormvariate(3.2, 1.0), 2)
    if currency == "JPY":
        return str(int(value * 150) or 1)
    return f"{max(value, 0.01):.2f}"


def _timestamp(rng: random.Random, start: datetime, days: int) -> str:
    moment = start + timedelta(seconds=rng.randrange(days * 86_400))
    if rng.random() < 0.1:  # some producers send local time with an offset
        return (moment + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def generate_rows(
    rows: int, seed: int, start: datetime, days: int, mix: Mix
) -> Iterator[dict[str, str] | str]:
    """Yield ``rows`` records: dicts of text fields, or a str for a deliberately malformed line."""
    rng = random.Random(seed)
    batch = f"{seed:08x}"[-8:]
    currencies = [code for code, _ in CURRENCIES]
    weights = [weight for _, weight in CURRENCIES]
    emitted: list[dict[str, str]] = []
    invalid_cycle = 0
    for index in range(rows):
        roll = rng.random()
        if emitted and roll < mix.duplicate_share:
            yield dict(rng.choice(emitted))
            continue
        currency = rng.choices(currencies, weights)[0]
        if rng.random() < mix.unknown_share:
            merchant = rng.choice(UNKNOWN_MERCHANTS)
        elif rng.random() < 0.3:
            merchant = rng.choice(SAMPLE_MERCHANTS)
        else:
            merchant = f"MER-{rng.randint(1, mix.known_merchants):06d}"
        record = {
            "transaction_id": f"TXN-{batch}-{index:09d}",
            "merchant_id": merchant,
            "amount": _amount(rng, currency),
            "currency": currency,
            "event_ts": _timestamp(rng, start, days),
        }
        if mix.duplicate_share + mix.invalid_share > roll >= mix.duplicate_share:
            kind = INVALID_KINDS[invalid_cycle % len(INVALID_KINDS)]
            invalid_cycle += 1
            if kind == "malformed_line":
                yield f"{record['transaction_id']},{merchant},oops"
                continue
            record.update(_invalid_fields(kind, record))
        else:
            emitted.append(record)
        yield record


def _invalid_fields(kind: str, record: dict[str, str]) -> dict[str, str]:
    return {
        "negative_amount": {"amount": "-" + record["amount"]},
        "zero_amount": {"amount": "0.00"},
        "missing_transaction_id": {"transaction_id": ""},
        "missing_merchant_id": {"merchant_id": ""},
        "unknown_currency": {"currency": "XYZ"},
        "bad_timestamp": {"event_ts": "yesterday afternoon"},
        "bad_amount": {"amount": "12.3.4"},
        "future_timestamp": {"event_ts": "2099-01-01T00:00:00Z"},
    }[kind]


def write_file(records: Iterator[dict[str, str] | str], output: Path) -> int:
    output.parent.mkdir(parents=True, exist_ok=True)
    jsonl = output.suffix.lower() in (".jsonl", ".json", ".ndjson")
    count = 0
    with output.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        if not jsonl:
            writer.writerow(INPUT_COLUMNS)
        for record in records:
            if isinstance(record, str):
                handle.write(record if not jsonl else '{"transaction_id": "' + record + "\n")
                if not jsonl:
                    handle.write("\n")
            elif jsonl:
                handle.write(json.dumps(record) + "\n")
            else:
                writer.writerow([record[column] for column in INPUT_COLUMNS])
            count += 1
    return count


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    start = datetime.fromisoformat(args.start).replace(tzinfo=UTC)
    mix = Mix(known_merchants=args.merchants)
    if args.clean:
        mix = replace(mix, invalid_share=0.0, duplicate_share=0.0)
    count = write_file(generate_rows(args.rows, seed, start, args.days, mix), args.output)
    print(f"generate: wrote {count:,} transactions to {args.output} (seed {seed})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
