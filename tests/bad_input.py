"""The check every case of the bad-input corpus makes: one line on stderr, the exact message, no traceback.

Corpus tests carry ``@pytest.mark.bad_input`` (``pytest -m bad_input`` runs them all); each writes one bad
file or value in the published format, runs the command through :func:`ttdnet.cli.main`, asserts exit status
1 and calls :func:`assert_one_line_error`.
"""


def assert_one_line_error(capsys, command: str, expected: str) -> str:
    """Assert that stderr is one ``ttdnet <command>: error: ...`` line containing ``expected``; return it.

    Parameters
    ----------
    capsys : pytest.CaptureFixture
    command : str
        The command as typed after ``ttdnet`` ("train-retrieval", "preprocess edf").
    expected : str
        Text the line must contain (the value, the file, the fix).
    """
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith(f"ttdnet {command}: error: ") and expected in err, err
    return err
