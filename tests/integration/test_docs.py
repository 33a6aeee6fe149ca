"""The README's configuration reference is the one labgwd prints."""
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("LABGW_BUILD", "build")


def _labgwd():
    path = BUILD if os.path.isabs(BUILD) else os.path.join(ROOT, BUILD)
    return os.path.join(path, "labgwd")


def test_readme_config_reference_matches_help_config():
    ref = subprocess.run([_labgwd(), "--help-config"], check=True, capture_output=True,
                         text=True).stdout.strip()
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    m = re.search(r"<!-- BEGIN CONFIG REFERENCE[^>]*-->\n(.*?)\n<!-- END CONFIG REFERENCE -->",
                  readme, re.S)
    assert m, "README.md lost its config reference markers"
    assert m.group(1).strip() == ref, (
        "README.md's configuration reference differs from `labgwd --help-config`; "
        "paste the new output between the markers")


def test_readme_quick_start_is_make_run_and_make_check():
    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    block = re.search(r"## Quick start\n\n```sh\n(.*?)```", readme, re.S)
    assert block
    commands = [line.split("#")[0].strip() for line in block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make run", "make check"]


def test_ci_runs_make_check():
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    lines = [l.strip() for l in ci.splitlines() if l.strip() and not l.strip().startswith("#")]
    assert "make check" in lines
