"""Set-up and stack scripts; versions.py is also imported by the tests."""
