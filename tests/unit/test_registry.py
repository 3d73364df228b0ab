"""The function registry is explicit; this keeps it honest against the files in functions/."""
from pathlib import Path

import functions
from schemas.events import SCHEMAS

FOLDER = Path(functions.__file__).parent
NOT_FUNCTIONS = {"__init__"}


def test_every_function_file_is_registered_and_nothing_else():
    files = {p.stem for p in FOLDER.glob("*.py")} - NOT_FUNCTIONS
    assert {f.NAME for f in functions.FUNCTIONS} == files


def test_each_function_declares_what_it_consumes_and_emits_known_types():
    for function in functions.FUNCTIONS:
        assert callable(function.handle), function.NAME
        for emitted in function.EMITS:
            assert emitted in SCHEMAS, f"{function.NAME} emits unknown type {emitted}"
        consumes = (function.CONSUMES,) if isinstance(function.CONSUMES, str) else function.CONSUMES
        for pattern in consumes:
            assert "*" in pattern or "#" in pattern or pattern in SCHEMAS, f"{function.NAME} consumes {pattern}"


def test_select_names_unknown_functions():
    try:
        functions.select("audit,nosuch")
    except ValueError as exc:
        assert "nosuch" in str(exc) and "audit" in str(exc)
    else:
        raise AssertionError("an unknown function name was accepted")
