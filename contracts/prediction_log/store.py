"""Reading and writing the prediction log: the service writes predictions and stores feedback,
the pipeline reads labelled rows, live quality and A/B outcomes, and prunes old rows."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from sqlalchemy import and_, case, create_engine, delete, event, func, insert, select
from sqlalchemy.engine import Engine

from contracts.prediction_log.migrate import sqlalchemy_url
from contracts.prediction_log.schema import feedback, predictions

SQLITE_BUSY_MS = 30_000
# The order of a row given to `PredictionLog.append` (features and output as JSON text).
ROW_COLUMNS = ("id", "model", "version", "digest", "environment", "variant", "created_at",
               "expires_at", "features", "predicted_label", "predicted_value", "output")
_CREATED, _EXPIRES = ROW_COLUMNS.index("created_at"), ROW_COLUMNS.index("expires_at")
_SQLITE_APPEND = (f"INSERT INTO predictions ({', '.join(ROW_COLUMNS)}) SELECT "
                  + ", ".join(f"json_extract(value, '$[{i}]')" for i in range(len(ROW_COLUMNS)))
                  + " FROM json_each(?)")
_ENCODER = msgspec.json.Encoder()


def engine_for(url: str) -> Engine:
    """An engine for `url`: SQLite in WAL mode (readers never block the writer) with foreign
    keys on; PostgreSQL with connections checked before use (a restarted server is survived)."""
    url = sqlalchemy_url(url)  # postgres:// as providers write it
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_MS / 1000,
                                                  "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(connection, _record) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            # The random ids' index outgrows the default 2 MiB cache within a day of traffic.
            cursor.execute("PRAGMA cache_size=-32768")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=4, max_overflow=4)


def utc(moment: datetime) -> datetime:
    """An aware UTC time (SQLite hands back naive ones)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True)
class Outcome:
    """What storing one label did: `stored` (new), `repeated` (the same label again),
    `conflict` (another label was stored before) or `unknown` (no such prediction)."""

    prediction_id: str
    status: str
    model: str | None = None
    version: int | None = None
    variant: str | None = None
    predicted: str | float | None = None
    stored: str | float | None = None  # the label (or value) the log holds for it
    correct: bool | None = None
    abs_error: float | None = None


class PredictionLog:
    """One database of predictions and feedback, shared by every replica."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = engine_for(url)

    def close(self) -> None:
        self.engine.dispose()

    # ---- the service's side -------------------------------------------------------------
    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert answered predictions (one transaction for the batch)."""
        if rows:
            with self.engine.begin() as connection:
                connection.execute(insert(predictions), list(rows))

    def append(self, rows: Sequence[tuple]) -> None:
        """Insert answered predictions given as tuples in ROW_COLUMNS order, their features and
        output already JSON text (one transaction): the service's fast path, a few microseconds
        a row where `write` spends tens. PostgreSQL takes them by COPY; SQLite as one JSON
        array in one statement, so that its work runs without Python's interpreter lock
        (executemany takes the lock back for every row, from a service's busy event loop)."""
        if not rows:
            return
        with self.engine.begin() as connection:
            driver = connection.connection.driver_connection
            if self.engine.dialect.name == "postgresql":
                with driver.cursor() as cursor, cursor.copy(
                        f"COPY predictions ({', '.join(ROW_COLUMNS)}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row(row)
                return
            # SQLite keeps times as text in SQLAlchemy's format, which its reads parse back;
            # the rows of one request share their times, so each is formatted once.
            stamp = self._sqlite_time
            texts: dict[Any, Any] = {None: None}
            stamped = []
            for r in rows:
                c, e = r[_CREATED], r[_EXPIRES]
                if c not in texts:
                    texts[c] = stamp(c)
                if e not in texts:
                    texts[e] = stamp(e)
                stamped.append((*r[:_CREATED], texts[c], texts[e], *r[_EXPIRES + 1:]))
            driver.execute(_SQLITE_APPEND, (_ENCODER.encode(stamped).decode(),))

    @property
    def _sqlite_time(self):
        return predictions.c.created_at.type.dialect_impl(self.engine.dialect).bind_processor(
            self.engine.dialect)

    def record_feedback(self, items: Sequence[tuple[str, str | float]], *,
                        regression: bool) -> list[Outcome]:
        """Store labels (or true values) of earlier predictions, all in one transaction;
        idempotent per prediction id: the same label again is `repeated`, another `conflict`
        (also when another replica stored a different one a moment earlier)."""
        ids = list(dict.fromkeys(pid for pid, _ in items))
        now = datetime.now(UTC)
        with self.engine.begin() as connection:
            found = {r.id: r for r in connection.execute(
                select(predictions.c.id, predictions.c.model, predictions.c.version,
                       predictions.c.variant, predictions.c.predicted_label,
                       predictions.c.predicted_value).where(predictions.c.id.in_(ids)))}
            before = set(connection.execute(select(feedback.c.prediction_id).where(
                feedback.c.prediction_id.in_(ids))).scalars())
            first = {pid: truth for pid, truth in reversed(items)}  # the first label per id
            new_rows = [_feedback_row(pid, first[pid], found[pid], regression, now)
                        for pid in ids if pid in found and pid not in before]
            if new_rows:
                connection.execute(_insert_new(self.engine, new_rows))
            held = {r.prediction_id: r for r in connection.execute(
                select(feedback).where(feedback.c.prediction_id.in_(ids)))}
        out = []
        for pid, truth in items:
            row, stored = found.get(pid), held.get(pid)
            if row is None or stored is None:
                out.append(Outcome(pid, "unknown"))
                continue
            kept = stored.value if regression else stored.label
            same = (float(truth) == kept) if regression else (str(truth) == kept)
            status = "conflict" if not same else "repeated" if pid in before else "stored"
            out.append(Outcome(pid, status, row.model, row.version, row.variant,
                               row.predicted_value if regression else row.predicted_label,
                               kept, stored.correct, stored.abs_error))
        return out

    def live_quality(self, model: str, window: int, *, by_variant: bool = False
                     ) -> dict[Any, dict[str, float]]:
        """Per version of `model`: labelled predictions among the newest `window` labels, and
        their accuracy (classifiers) or mean absolute error (regression). With `by_variant`,
        per (version, A/B variant) instead (variant None outside a test)."""
        recent = (select(predictions.c.version, predictions.c.variant, feedback.c.correct,
                         feedback.c.abs_error)
                  .join(feedback, feedback.c.prediction_id == predictions.c.id)
                  .where(predictions.c.model == model)
                  .order_by(feedback.c.received_at.desc()).limit(window).subquery())
        correct = func.avg(case((recent.c.correct.is_(None), None),
                                (recent.c.correct, 1.0), else_=0.0))
        query = select(recent.c.version, recent.c.variant, func.count(), correct,
                       func.avg(recent.c.abs_error)).group_by(recent.c.version, recent.c.variant)
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        out: dict[tuple[int, str | None], dict[str, float]] = {}
        for version, variant, n, correct, error in rows:
            entry: dict[str, float] = {"labelled": int(n)}
            if correct is not None:
                entry["accuracy"] = float(correct)
            if error is not None:
                entry["mae"] = float(error)
            out[(int(version), variant)] = entry
        return out if by_variant else fold_variants(out)

    # ---- the pipeline's side ------------------------------------------------------------
    def labelled(self, model: str, since: datetime | None = None) -> list[dict[str, Any]]:
        """Every labelled prediction of `model` (made at or after `since`), oldest first."""
        query = (select(predictions.c.id, predictions.c.created_at, predictions.c.version,
                        predictions.c.variant, predictions.c.features, feedback.c.label,
                        feedback.c.value, feedback.c.received_at)
                 .join(feedback, feedback.c.prediction_id == predictions.c.id)
                 .where(predictions.c.model == model).order_by(predictions.c.created_at))
        if since is not None:
            query = query.where(predictions.c.created_at >= since)
        with self.engine.connect() as connection:
            return [dict(r._mapping) | {"created_at": utc(r.created_at),
                                        "received_at": utc(r.received_at)}
                    for r in connection.execute(query)]

    def outcomes(self, model: str, environment: str,
                 since: datetime | None = None) -> list[dict[str, Any]]:
        """Labelled predictions of `model` in `environment` with their variant and outcome."""
        query = (select(predictions.c.variant, predictions.c.version, predictions.c.created_at,
                        feedback.c.correct, feedback.c.abs_error, feedback.c.received_at)
                 .join(feedback, feedback.c.prediction_id == predictions.c.id)
                 .where(and_(predictions.c.model == model,
                             predictions.c.environment == environment)))
        if since is not None:
            query = query.where(predictions.c.created_at >= since)
        with self.engine.connect() as connection:
            return [dict(r._mapping) for r in connection.execute(query)]

    def variant_counts(self, model: str, environment: str,
                       since: datetime | None = None) -> dict[tuple[str | None, int], int]:
        """Predictions of `model` in `environment` (made at or after `since`) per (variant,
        version), labelled or not: what an A/B test's traffic split really was."""
        query = (select(predictions.c.variant, predictions.c.version, func.count())
                 .where(and_(predictions.c.model == model,
                             predictions.c.environment == environment))
                 .group_by(predictions.c.variant, predictions.c.version))
        if since is not None:
            query = query.where(predictions.c.created_at >= since)
        with self.engine.connect() as connection:
            return {(variant, int(version)): int(n)
                    for variant, version, n in connection.execute(query)}

    def count(self, model: str | None = None) -> dict[str, int]:
        """How many predictions and labels the log holds (for `model`, or all)."""
        p = select(func.count()).select_from(predictions)
        f = select(func.count()).select_from(feedback.join(
            predictions, feedback.c.prediction_id == predictions.c.id))
        if model is not None:
            p, f = p.where(predictions.c.model == model), f.where(predictions.c.model == model)
        with self.engine.connect() as connection:
            return {"predictions": connection.execute(p).scalar_one(),
                    "labelled": connection.execute(f).scalar_one()}

    def prune(self, now: datetime | None = None, *, before: datetime | None = None,
              model: str | None = None) -> dict[str, int]:
        """Delete the predictions (and their labels) whose retention ran out by `now`, or,
        with `before`, every one made before it; return the counts."""
        if before is not None:
            old = predictions.c.created_at < before
        else:
            old = predictions.c.expires_at < (now or datetime.now(UTC))
        if model is not None:
            old = and_(old, predictions.c.model == model)
        with self.engine.begin() as connection:
            labels = connection.execute(delete(feedback).where(feedback.c.prediction_id.in_(
                select(predictions.c.id).where(old)))).rowcount
            rows = connection.execute(delete(predictions).where(old)).rowcount
        return {"predictions": rows, "labelled": labels}


def fold_variants(quality: dict[tuple[int, str | None], dict[str, float]]
                  ) -> dict[int, dict[str, float]]:
    """Live quality per version from live quality per (version, variant): the variants'
    figures weighted by their labels."""
    out: dict[int, dict[str, float]] = {}
    for (version, _), measures in quality.items():
        entry = out.get(version)
        if entry is None:
            out[version] = dict(measures)
            continue
        n, total = measures["labelled"], entry["labelled"] + measures["labelled"]
        for measure in ("accuracy", "mae"):
            if measure in measures:
                entry[measure] = (entry.get(measure, 0.0) * entry["labelled"]
                                  + measures[measure] * n) / total
        entry["labelled"] = total
    return out


def _feedback_row(pid: str, truth: str | float, row, regression: bool,
                  now: datetime) -> dict[str, Any]:
    if regression:
        value = float(truth)
        error = abs(value - row.predicted_value) if row.predicted_value is not None else None
        return {"prediction_id": pid, "label": None, "value": value, "correct": None,
                "abs_error": error, "received_at": now}
    return {"prediction_id": pid, "label": str(truth), "value": None,
            "correct": row.predicted_label == str(truth), "abs_error": None, "received_at": now}


def _insert_new(engine: Engine, rows: Iterable[dict[str, Any]]):
    """INSERT ... ON CONFLICT DO NOTHING: a label another replica stored first is kept."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    return dialect_insert(feedback).values(list(rows)).on_conflict_do_nothing(
        index_elements=["prediction_id"])
