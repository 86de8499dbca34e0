"""The options kew_consume and kew_run offer in --help and accept."""

import pytest
from django.core.management import CommandError, call_command, load_command_class


def options_of(name: str) -> set[str]:
    parser = load_command_class("kew_django", name).create_parser("manage.py", name)
    return {option for action in parser._actions for option in action.option_strings}


def test_kew_consume_offers_processes():
    assert {"--processes", "--concurrency", "--provider", "--metrics-port"} <= options_of(
        "kew_consume"
    )


def test_kew_run_offers_what_it_runs_and_not_processes():
    options = options_of("kew_run")
    assert {"--concurrency", "--provider", "--metrics-port"} <= options
    assert "--processes" not in options


def test_kew_run_refuses_processes_before_it_starts():
    with pytest.raises(CommandError, match="processes"):
        call_command("kew_run", "--processes", "2")
