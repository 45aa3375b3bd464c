"""atheris fuzz target: the native PII scanner and scrubber on arbitrary input, against their
oracles (the regex scanner, the Python scrubber).

    python tests/fuzz/fuzz_scan.py -dict=tests/fuzz/scan.dict -max_total_time=60

Each input is read twice: as Unicode text (non-ASCII text takes the regex path, so this checks
the dispatch), and as the ASCII text of its bytes, which the native scanner reads. A crash, a
hang or a finding that differs from the oracle's stops the fuzzer with the input that caused it.
`tests/test_scan.py` runs it in the suite for a bounded time.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["anonymization"]):
    from anonymization import PythonScrubber, Scrubber, _detect

IDENTIFIERS = {"alice.smith@example.com": "p1_a", "alice.smith": "p1_b"}


def check(data: bytes) -> None:
    provider = atheris.FuzzedDataProvider(data)
    unicode_text = provider.ConsumeUnicodeNoSurrogates(len(data))
    ascii_text = bytes(byte & 0x7F for byte in data).decode("ascii")
    for text in (unicode_text, ascii_text):
        native = _detect._find(text)
        oracle = _detect._find_regex(text)
        if native != oracle:
            raise AssertionError(f"{text!r}: native {native} != regex {oracle}")
    event = {ascii_text: [unicode_text, {"note": ascii_text}]}
    scrubbed = Scrubber(IDENTIFIERS).value(event)
    if scrubbed != PythonScrubber(IDENTIFIERS).value(event):
        raise AssertionError(f"{event!r}: the native scrubber differs from its oracle")


def main() -> None:
    if not _detect.NATIVE_SCANNER:
        sys.exit("the native scanner is not built: run `make` (pip install -e .) first")
    atheris.Setup(sys.argv, check)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
