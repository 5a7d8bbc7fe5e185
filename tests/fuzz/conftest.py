"""Prints the fuzz figures (cases run, valid / invalid, exceptions seen) at the end of a run."""
from fuzz_support import CASES, FUZZ_SETTINGS, RAISED


def pytest_terminal_summary(terminalreporter):
    if not CASES:
        return
    ops = sorted({op for op, _ in CASES})
    valid = sum(n for (_, kind), n in CASES.items() if kind == "valid")
    invalid = sum(n for (_, kind), n in CASES.items() if kind == "invalid")
    tr = terminalreporter
    tr.section("nnx fuzz")
    tr.write_line(f"{valid + invalid} fuzz cases ran over {len(ops)} ops: {valid} with valid arguments "
                  f"(checked against nnx.reference), {invalid} with invalid ones "
                  f"({', '.join(f'{n} {e}' for e, n in sorted(RAISED.items()))}); "
                  f"{FUZZ_SETTINGS.max_examples} examples per test")
