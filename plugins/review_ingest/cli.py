"""``review-ingest``: check or import one file, cancel an import, answer a person's request,
purge, check or export the audit trail, or migrate the warehouse, from a shell."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from review_ingest import settings
from review_ingest.core import report
from review_ingest.core.merchants import read_merchants
from review_ingest.core.outcomes import SOURCES, Outcome
from review_ingest.core.template_columns import TEMPLATES
from review_ingest.errors import ConfigError, UsageError

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from review_ingest.store.audit import Verification


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="review-ingest", description="Check or import merchants' order files."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="run every check that needs no warehouse; load nothing")
    check.add_argument("file", type=Path)
    check.add_argument("--template", required=True)
    check.add_argument("--as-of", dest="as_of", help="the import's date, YYYY-MM-DD")
    check.add_argument("--json", action="store_true", help="print only the JSON report")
    imp = sub.add_parser("import", help="run the whole pipeline for one file")
    imp.add_argument("file", type=Path)
    imp.add_argument("--merchant", required=True)
    imp.add_argument("--source", choices=SOURCES, default="upload")
    imp.add_argument("--json", action="store_true", help="print only the JSON report")
    sub.add_parser("migrate", help="create or upgrade the warehouse schema (Alembic)")
    purge = sub.add_parser(
        "purge", help="remove personal data past retention (section 11), and old Data Docs"
    )
    purge.add_argument("--dry-run", action="store_true", help="count, change nothing")
    purge.add_argument("--json", action="store_true", help="print the counts as JSON")
    erase = sub.add_parser("erase", help="erase a person's data (their request)")
    _person_arguments(erase)
    erase.add_argument("--dry-run", action="store_true", help="count, change nothing")
    for name, text in (
        ("suppress", "a person asked not to be contacted: no request for them from now on"),
        ("unsuppress", "take a person off the opt-out list"),
    ):
        _person_arguments(sub.add_parser(name, help=text))
    imports = sub.add_parser("imports", help="list the latest files seen, with their reports")
    imports.add_argument("--merchant", help="only this merchant's files")
    imports.add_argument("--limit", type=int, default=20)
    cancel = sub.add_parser(
        "cancel", help="cancel an import's requests not yet due, or those of some orders"
    )
    cancel.add_argument("--import", dest="import_id", required=True, help="the import's id")
    cancel.add_argument(
        "--reason",
        required=True,
        help="why; with --order-ref one of refunded, order_cancelled, test_order, duplicate_order",
    )
    cancel.add_argument(
        "--order-ref",
        dest="order_refs",
        action="append",
        metavar="REF",
        help="only this order's requests (repeat for several orders)",
    )
    cancel.add_argument("--dry-run", action="store_true", help="count, change nothing")
    cancel.add_argument("--json", action="store_true", help="print the counts as JSON")
    _audit_arguments(sub.add_parser("audit", help="check or export the audit trail"))
    return parser


def _audit_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="audit_command", required=True)
    verify = sub.add_parser(
        "verify", help="recompute every entry's hash and link; exit 1 naming the first break"
    )
    verify.add_argument(
        "--anchor",
        metavar="ENTRY_ID:HASH",
        help="an entry noted earlier (the head a verify printed): it must still be there",
    )
    verify.add_argument("--json", action="store_true", help="print the result as JSON")
    export = sub.add_parser("export", help="the entries as JSON Lines, every field")
    export.add_argument("--since", help="first day, YYYY-MM-DD (UTC, included)")
    export.add_argument("--until", help="last day, YYYY-MM-DD (UTC, included)")
    export.add_argument("--output", type=Path, help="write to this file (default: stdout)")


def _person_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--email", required=True, help="the person's address (never printed)")
    parser.add_argument("--merchant", help="only this merchant (default: every merchant)")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(message)s")
    try:
        if args.command == "check":
            return _check(args)
        if args.command == "import":
            return _import(args)
        if args.command == "imports":
            return _imports(args)
        if args.command in PERSONAL_DATA_COMMANDS:
            return _personal_data(args)
        if args.command == "cancel":
            return _cancel(args)
        if args.command == "audit":
            return _audit(args)
        return _migrate()
    except (UsageError, ConfigError) as exc:
        print(f"review-ingest: {exc}", file=sys.stderr)
        return 2


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"file not found: {path}") from None
    except IsADirectoryError:
        raise UsageError(f"not a file: {path}") from None


def _check(args: argparse.Namespace) -> int:
    if args.template not in TEMPLATES:
        raise UsageError(
            f"unknown template {args.template!r}: choose one of {', '.join(TEMPLATES)}"
        )
    as_of = None
    if args.as_of:
        try:
            as_of = dt.date.fromisoformat(args.as_of)
        except ValueError:
            raise UsageError(f"--as-of must be a date YYYY-MM-DD, not {args.as_of!r}") from None
    data = _read(args.file)
    from review_ingest.pipeline.ingest import Ingest

    outcome = Ingest(data_dir=settings.data_dir(), data_docs=False).check(
        data, args.file.name, args.template, as_of
    )
    return _finish(outcome, args.json, reports=None)


def _import(args: argparse.Namespace) -> int:
    read = read_merchants(settings.merchants_file())
    if args.merchant in read.problems:
        raise UsageError(read.problems[args.merchant])
    if args.merchant not in read.merchants:
        raise UsageError(
            f"unknown merchant {args.merchant!r}: it is not in {settings.merchants_file()}"
        )
    if not args.file.is_file():
        raise UsageError(f"file not found: {args.file}")
    from review_ingest.pipeline.ingest import Ingest

    ingest = Ingest(
        data_dir=settings.data_dir(),
        merchants=read.merchants,
        warehouse_url=settings.warehouse_url(),
        actor=_system_user(),
    )
    outcome = ingest.import_file(args.file, args.merchant, args.source)
    ingest.finish()
    reports = settings.data_dir() / "reports" / args.merchant / outcome.record.import_id
    return _finish(outcome, args.json, reports=reports)


PERSONAL_DATA_COMMANDS = ("purge", "erase", "suppress", "unsuppress")


def _personal_data(args: argparse.Namespace) -> int:
    """Contract section 11: counts on standard output, never an address; 0 when done, 1 when a
    part of a purge failed (named on standard error), 2 for a usage error."""
    from review_ingest.privacy import addresses, erasure, retention, suppressions

    now = dt.datetime.now(dt.UTC)
    if args.command == "purge":
        days, docs_days = settings.retention_days(), settings.docs_retention_days()
        merchants = read_merchants(settings.merchants_file()).merchants
        engine = _engine()
        with _stdout_to_stderr():  # Airflow's SFTP hook logs to standard output
            result = retention.purge(
                engine,
                settings.data_dir(),
                merchants,
                now,
                days,
                dry_run=args.dry_run,
                actor=_system_user(),
                docs_days=docs_days,
            )
        for part, why in result.failures.items():
            print(f"review-ingest: purge: {part}: {why}", file=sys.stderr)
        return _print_counts(result.as_dict(), args.json, 1 if result.failures else 0)
    address = addresses.parse(args.email)
    merchant_id = addresses.parse_merchant_id(args.merchant)
    engine = _engine()
    if args.command == "erase":
        done = erasure.erase(
            engine,
            settings.data_dir(),
            address,
            merchant_id,
            now,
            dry_run=args.dry_run,
            actor=_system_user(),
        )
    elif args.command == "suppress":
        done = suppressions.suppress(engine, address, merchant_id, now, actor=_system_user())
    else:
        done = suppressions.unsuppress(engine, address, merchant_id, now, actor=_system_user())
    return _print_counts(done.as_dict(), args.json, 0)


def _cancel(args: argparse.Namespace) -> int:
    """Contract section 12: the counts on standard output; 0 when done, even with nothing left
    to cancel; 2 for a usage error (an unknown import, a reason not allowed)."""
    from review_ingest.store import cancellations

    done = cancellations.cancel(
        _engine(),
        args.import_id,
        args.reason,
        args.order_refs,
        who=_system_user(),
        now=dt.datetime.now(dt.UTC),
        dry_run=args.dry_run,
    )
    return _print_counts(done.as_dict(), args.json, 0)


def _system_user() -> str:
    """Who runs the command, as ``cancellations`` and the audit trail record it:
    ``cli:<system user>``."""
    from review_ingest.store import audit

    return audit.system_actor()


def _audit(args: argparse.Namespace) -> int:
    """``audit verify``: 0 and one line when the chain is intact, 1 naming the first entry
    changed or deleted. ``audit export``: JSON Lines; 2 for a usage error (a bad date)."""
    from review_ingest.store import audit

    if args.audit_command == "export":
        since, until = _day(args.since, "--since"), _day(args.until, "--until")
        if since and until and since > until:
            raise UsageError(f"--since {since} is after --until {until}")
        entries = audit.export(_engine(), since, until)
        if args.output is None:
            written = _write_lines(entries, sys.stdout)
        else:
            with _output(args.output) as stream:
                written = _write_lines(entries, stream)
            print(f"{written} audit entries written to {args.output}")
        return 0
    anchor = None if args.anchor is None else audit.parse_anchor(args.anchor)
    result = audit.verification(_engine(), anchor)
    return _print_verification(result, args.json)


def _day(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{option} must be a date YYYY-MM-DD, not {text!r}") from None


@contextlib.contextmanager
def _output(path: Path) -> Iterator[TextIO]:
    """``path`` opened for writing; a folder missing or not writable is a usage error."""
    try:
        stream = path.open("w", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"--output {path}: {exc.strerror or exc}") from None
    with stream:
        yield stream


def _write_lines(entries: Iterator[dict[str, Any]], stream: TextIO) -> int:
    count = 0
    for entry in entries:
        stream.write(json.dumps(entry, ensure_ascii=False) + "\n")
        count += 1
    return count


def _print_verification(result: Verification, as_json: bool) -> int:
    """One line (or JSON) on standard output; a break also named on standard error."""
    head = None if result.head is None else str(result.head)
    broken = result.broken
    if as_json:
        found = None if broken is None else {"entry_id": broken.entry_id, "problem": broken.problem}
        print(
            json.dumps(
                {
                    "command": "audit verify",
                    "intact": broken is None,
                    "entries": result.entries,
                    "head": head,
                    "broken": found,
                }
            )
        )
    elif broken is None:
        print(f"audit trail intact: {result.entries} entries, head {head or 'none (empty)'}")
    else:
        print(f"audit trail broken at entry {broken.entry_id}: {broken.problem}")
    if broken is not None:
        print(
            f"review-ingest: audit verify: entry {broken.entry_id}: {broken.problem}",
            file=sys.stderr,
        )
        return 1
    return 0


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Whatever writes to standard output meanwhile (file descriptor 1, so a logger that holds
    ``sys.stdout`` too) goes to standard error: ``--json`` output stays JSON alone."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _engine() -> Engine:
    """The configured warehouse, migrated."""
    from review_ingest.store import warehouse

    engine = warehouse.engine_for(settings.warehouse_url())
    warehouse.migrate(engine)
    return engine


def _print_counts(counts: dict[str, Any], as_json: bool, status: int) -> int:
    if as_json:
        print(json.dumps(counts))
    else:
        print(", ".join(f"{key}: {value}" for key, value in counts.items()))
    return status


def _migrate() -> int:
    from review_ingest.store import warehouse

    warehouse.migrate(warehouse.engine_for(settings.warehouse_url()))
    print("warehouse schema is up to date")
    return 0


def _imports(args: argparse.Namespace) -> int:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from review_ingest.store import warehouse
    from review_ingest.store.models import ImportRow

    engine = warehouse.engine_for(settings.warehouse_url())
    warehouse.migrate(engine)
    query = select(ImportRow).order_by(ImportRow.processed_at.desc()).limit(args.limit)
    if args.merchant:
        query = query.where(ImportRow.merchant_id == args.merchant)
    with Session(engine) as session:
        rows = session.scalars(query).all()
        for row in rows:
            status = row.status + (f" ({row.rejection_code})" if row.rejection_code else "")
            print(
                f"{row.merchant_id}/{row.file_name}: {status}; rows {row.total_rows} "
                f"({row.valid_rows} valid, {row.error_rows} with errors, {row.duplicate_rows} "
                f"duplicates); requests {row.brand_requests} brand, {row.product_requests} "
                "product"
            )
            reports = settings.data_dir() / "reports" / row.merchant_id / row.import_id
            print(f"  report: {reports / 'report.html'}")
    return 0


def _finish(outcome: Outcome, as_json: bool, reports: Path | None) -> int:
    if as_json:
        print(json.dumps(report.to_dict(outcome), ensure_ascii=False))
    else:
        print(_summary(outcome, reports))
    return 1 if outcome.record.status == "rejected" else 0


def _summary(outcome: Outcome, reports: Path | None) -> str:
    r = outcome.record
    lines = [f"{r.file_name}: {r.status}"]
    if outcome.rejection:
        lines.append(f"  rejected ({outcome.rejection.code}): {outcome.rejection.message}")
    lines.append(
        f"  rows {r.total_rows}: {r.valid_rows} valid, {r.error_rows} with errors, "
        f"{r.duplicate_rows} duplicates; requests: {r.brand_requests} brand, "
        f"{r.product_requests} product, {outcome.due_now} due now"
    )
    for e in outcome.errors[:20]:
        lines.append(f"  line {e.line} {e.column or '-'} {e.code}: {e.message}")
    if len(outcome.errors) > 20:
        lines.append(f"  ... and {len(outcome.errors) - 20} more errors (see the report)")
    if reports:
        lines.append(f"  report: {reports / 'report.html'}")
    return "\n".join(lines)
