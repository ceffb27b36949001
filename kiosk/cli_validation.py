"""`kiosk validation matrix`: REQUIREMENTS.md row -> tests -> last result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from kiosk.services.validation import (
    RESULTS_FILE,
    ValidationError,
    build_matrix,
    load_results,
    parse_requirements,
    render_markdown,
    unknown_tags,
)

ROOT = Path(__file__).resolve().parent.parent
app = typer.Typer(help="Validation evidence (21 CFR 11.10(a), Annex 11 §4).", no_args_is_help=True)


@app.command()
def matrix(
    results: Annotated[Optional[Path], typer.Option(help="Test results JSON (default: ./validation-results.json).")] = None,
    requirements: Annotated[Optional[Path], typer.Option(help="Requirements table (default: docs/REQUIREMENTS.md).")] = None,
    run: Annotated[bool, typer.Option("--run", help="Run the test suite first to refresh the results.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="md or pdf.")] = "md",
    out: Annotated[Optional[Path], typer.Option(help="Write here instead of standard output (required for pdf).")] = None,
) -> None:
    """Print each requirement row with its tests and their results; a row without a passing test is a gap."""
    from kiosk.cli import EXIT_FAILED, fail, output_file

    if fmt not in ("md", "pdf"):
        raise fail("--format must be md or pdf")
    if fmt == "pdf" and out is None:
        raise fail("--format pdf needs --out FILE")
    results = results or Path.cwd() / RESULTS_FILE
    requirements = requirements or ROOT / "docs" / "REQUIREMENTS.md"
    if run:
        env_path = str(results.resolve())
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-n", "2"], cwd=ROOT,
                               env={**__import__("os").environ, "KIOSK_VALIDATION_RESULTS": env_path})
        typer.echo(f"test run finished with exit code {code}", err=True)
    try:
        reqs = parse_requirements(requirements.read_text("utf-8"))
        tests, info = load_results(results)
    except OSError as exc:
        raise fail(f"{requirements}: cannot be read ({exc.strerror})")
    except ValidationError as exc:
        raise fail(str(exc))
    rows = build_matrix(reqs, tests)
    text = render_markdown(rows, info)
    stray = unknown_tags(reqs, tests)
    if stray:
        text += f"\nTests tagged with ids that are not in the requirements: {', '.join(sorted(stray))}\n"
    if fmt == "pdf":
        from kiosk.services.pdf_report import markdown_table_pdf

        with output_file(out):
            markdown_table_pdf(text, out)
        typer.echo(f"wrote {out}")
    elif out:
        from kiosk.services.atomic_file import written_atomically

        with output_file(out), written_atomically(out, "w", encoding="utf-8") as fh:
            fh.write(text)
        typer.echo(f"wrote {out}")
    else:
        typer.echo(text)
    if any(row.status != "PASS" for row in rows):
        raise typer.Exit(EXIT_FAILED)
