"""Synthetic people benchmark: identity resolution on realistically corrupted person records.

Run from the repository root::

    python -m bench.people --records 100000 [--sources 4] [--seed 0] [--engine | --engine-only] [--splink]
    python -m bench.people --sizes 10000,100000 --engine --splink         # a growth table
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m bench.people --records 100000

What it does:

1. generates person records with ground truth (``generate``): people in households, spread over several
   source systems (CRM, ERP, web, support, ...) each with its own field coverage, and corrupted the way real
   exports are (typos, nicknames, initials, swapped names, moved addresses, changed emails, phone formats,
   missing fields, day/month swaps in birth dates, shared family phones and emails, ...). Deterministic for
   a seed, streamed to a JSON-lines file in a child process (memory bounded at any size);
2. runs the product's own path on it (``product``): sources created with ``source_create``, every batch
   through ``ingestion.services.records_receive`` with Celery eager, so each batch is resolved as it arrives
   on the configured database (its own throwaway database, see ``bench.ingest.database_create``); the
   matching model is trained with ``manage.py match_train`` after ``--train-after`` of the records (when
   that command exists) and everything is re-evaluated with ``manage.py resolve --all`` at the end (when
   that command exists); the profile of each record (``SourceRecord.profile_id``) is compared with the
   truth after ingestion and after ``resolve --all``;
3. optionally the pure engine (``profiles.matching.link_records``, ``--engine`` / ``--engine-only``) and
   Splink (``--splink``, when installed) on the same records, normalised the same way;
4. prints, per run: profile precision (share of predicted profiles holding one person), profile recall
   (share of people whose records all ended on one profile), over-merge rate (share of people sharing a
   profile with another person), pairwise precision / recall / F1 of the clustering, wall time, records per
   second and peak memory (maximum RSS of the run's own process); with several sizes, how time and memory
   grow with the number of records;
5. with ``--misses``, where recall goes: every person still split over several profiles, classified by the
   closest pair of their records on two profiles (no blocking key shared, held apart by a guard, in the
   review band, scored too low) and by what that pair agrees on (``miss_report``).

Every run is its own child process, so its peak memory is its own. Nothing here tunes anything on the
ground truth: it is read only to score.

The modules: ``names`` and ``population`` (the people, the truth), ``records`` (their records in the sources,
the data file), ``scores`` (``partition_scores``, ``miss_report``), ``product`` (the product's path),
``engines`` (the batch resolution, the pure engine and Splink) and ``cli`` (the runs and the report).
"""

from .engines import run_batch, run_engine
from .names import NICKNAMES
from .population import CORRUPTIONS
from .product import product_run
from .records import GenerationStats, Truth, _email_typo, data_batches, data_write, generate, people_sources
from .scores import MISS_NO_KEY, MISS_ORDER, miss_report, partition_scores

__all__ = [
    "CORRUPTIONS",
    "MISS_NO_KEY",
    "MISS_ORDER",
    "NICKNAMES",
    "GenerationStats",
    "Truth",
    "_email_typo",
    "data_batches",
    "data_write",
    "generate",
    "miss_report",
    "partition_scores",
    "people_sources",
    "product_run",
    "run_batch",
    "run_engine",
]
