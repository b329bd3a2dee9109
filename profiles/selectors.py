"""Reads shared by the API, the admin and exports."""

from __future__ import annotations

import contextlib
import re
from collections import defaultdict
from functools import cached_property
from uuid import UUID

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Case, Count, F, FloatField, Func, Q, QuerySet, TextField, Value, When, Window
from django.db.models.functions import Ln

from ingestion.models import IdentifierType
from ingestion.normalise import InvalidValue, normalise_identifier, search_text
from ingestion.selectors import identifier_normalisers

from .models import Identity, MergeEvent, Profile, SourceRecord


class UnknownIdentifierType(ValueError):
    pass


def profile_get(*, profile_id: UUID | str) -> Profile | None:
    """The profile, or the survivor a merged profile points at (ids handed out earlier keep working)."""
    try:
        profile_id = UUID(str(profile_id))
    except ValueError:
        return None
    profile = Profile.objects.filter(pk=profile_id).first()
    seen = set()
    while profile is not None and profile.merged_into_id is not None and profile.pk not in seen:
        seen.add(profile.pk)
        profile = Profile.objects.filter(pk=profile.merged_into_id).first()
    return profile


def identifier_normalise(*, type: str, value: str, region: str | None = None) -> str:
    normaliser = IdentifierType.objects.filter(name=type).values_list("normaliser", flat=True).first()
    if normaliser is None:
        raise UnknownIdentifierType(f"unknown identifier type {type!r}")
    return normalise_identifier(normaliser, value, region or settings.CDP_DEFAULT_PHONE_REGION)


def profile_lookup(*, type: str, value: str, region: str | None = None) -> Profile | None:
    """Find a person by any identifier, written in any form that normalises the same."""
    normalised = identifier_normalise(type=type, value=value, region=region)
    identity = Identity.objects.filter(type=type, value=normalised).select_related("profile").first()
    return profile_get(profile_id=identity.profile_id) if identity else None


def profile_list() -> QuerySet[Profile]:
    return Profile.objects.filter(status=Profile.Status.ACTIVE)


# Ranks of the search box: an identifier, a source's record id or the profile id is a certain hit; a name
# comes after: the whole name, then its beginning, then (on PostgreSQL) by how close it is, elsewhere any part.
RANK_IDENTIFIER = 3.0
RANK_NAME_EXACT = 2.0
RANK_NAME_PREFIX = 1.5
RANK_NAME_PART = 1.0
RANK_NAME_TYPO = 0.5  # embedded database only: PostgreSQL ranks corrected names by how close they are

# The embedded database (SQLite) has no trigram index: misspelt names are matched in Python, over at most this
# many profiles (a try-out's demo data; production runs on PostgreSQL's word index).
EMBEDDED_TYPO_SEARCH_LIMIT = 50_000
TYPED_TERM = re.compile(r"^(?P<type>[A-Za-z][\w-]*)(?:\s*[:/#]\s*|\s+)(?P<value>\S.*)$")


def profile_search(*, term: str, queryset: QuerySet[Profile] | None = None) -> QuerySet[Profile]:
    """The profiles a search box term finds, annotated with ``search_rank`` (higher is better).

    The term is tried as every identifier type (normalised the way identities are stored, so a phone matches
    in any format and an email in any case), as a value prefixed with its type (a source's id written with the
    source: ``crm:C-1001``, ``crm C-1001``), as a source record's external id, as a profile id, and as a name:
    accents and case ignored, and on PostgreSQL typo-tolerant (each word corrected against the dictionary of
    name words, see ``_name_search_postgresql``). Identifier lookups are exact, on their unique index. A term with a digit or an "@" is
    no name: it is looked up as an identifier only."""
    queryset = Profile.objects.all() if queryset is None else queryset
    term = term.strip()
    if not term:
        return queryset.annotate(search_rank=Value(0.0, output_field=FloatField()))
    # Exact identifier hits first, in one query on unique / plain indexes: a handful of ids, so the filter
    # below is an index scan per branch (with the trigram index on PostgreSQL), not a pass over every profile.
    hits = SourceRecord.objects.filter(external_id=term, profile__isnull=False).values_list(
        "profile_id", flat=True
    )
    identities = Q()
    normalisers = identifier_normalisers()
    for name, normaliser in normalisers.items():
        try:
            value = normalise_identifier(normaliser, term, settings.CDP_DEFAULT_PHONE_REGION)
        except InvalidValue:
            continue
        identities |= Q(type=name, value=value)
    # "crm:C-1001", "crm C-1001", "erp/E7": an identifier type (a source's slug, or email, phone, ...) and a
    # value of it, as staff copy ids from other systems.
    typed = TYPED_TERM.match(term)
    if typed and (kind := typed["type"].casefold()) in normalisers:
        with contextlib.suppress(InvalidValue):
            value = normalise_identifier(normalisers[kind], typed["value"], settings.CDP_DEFAULT_PHONE_REGION)
            identities |= Q(type=kind, value=value)
    if identities:
        hits = hits.union(Identity.objects.filter(identities).values_list("profile_id", flat=True))
    profile_ids = set(hits)
    with contextlib.suppress(ValueError):
        profile_ids.add(UUID(term))
    identifier_hit = Q(pk__in=profile_ids)

    folded = search_text(term)
    # A name has no digits and no "@": such a term is an identifier (found above, exactly) or nothing. Skipping
    # the name match spares it the name word corrections and index scans.
    if not folded or "@" in term or any(ch.isdigit() for ch in term):
        return queryset.filter(identifier_hit).annotate(
            search_rank=Value(RANK_IDENTIFIER, output_field=FloatField())
        )
    if connection.vendor != "postgresql":
        name_hit = Q(display_name__icontains=term) | Q(search_name__contains=folded)
        typos = _name_typos_embedded(folded)
        return queryset.filter(identifier_hit | name_hit | Q(pk__in=list(typos))).annotate(
            search_rank=Case(
                When(identifier_hit, then=Value(RANK_IDENTIFIER)),
                When(search_name=folded, then=Value(RANK_NAME_EXACT)),
                When(search_name__startswith=folded, then=Value(RANK_NAME_PREFIX)),
                When(name_hit, then=Value(RANK_NAME_PART)),
                *(When(pk=pk, then=Value(RANK_NAME_TYPO * score / 100)) for pk, score in typos.items()),
                default=Value(0.0),
                output_field=FloatField(),
            )
        )
    return _name_search_postgresql(queryset, identifier_hit, folded)


def _name_typos_embedded(folded: str) -> dict[UUID, float]:
    """Profiles whose name is a slip or two from the term, with the similarity (0-100), on the embedded
    database (see the limit)."""
    from rapidfuzz import fuzz, process

    names = Profile.objects.filter(status=Profile.Status.ACTIVE).exclude(search_name="").order_by()
    choices = dict(names.values_list("pk", "search_name")[: EMBEDDED_TYPO_SEARCH_LIMIT + 1])
    if len(choices) > EMBEDDED_TYPO_SEARCH_LIMIT:
        return {}
    found = process.extract(folded, choices, scorer=fuzz.token_sort_ratio, score_cutoff=80, limit=50)
    return {pk: score for _, score, pk in found}


# Typo-tolerant names on PostgreSQL (migration 0010): each word of the term is corrected against the dictionary
# of the words of all names (the words one slip away, and the most similar ones), then the profiles whose name
# has a correction of every word are found on the GIN index of the name's words. A misspelt "John Smith" so
# reads the profiles named John / Jon ... and Smith / Smit ..., never every Smith and every John.
NAME_WORD_CORRECTIONS = 6  # most similar dictionary words tried per word, besides those one slip away
NAME_WORD_MIN_LENGTH = 2  # a single letter (an initial) constrains nothing; the rank still weighs it
# A name shared by many of the profiles found is the likelier meaning of a misspelt term ("smiht": Smith rather
# than Smit): ln(namesakes) times this weighs in, far less than a closer spelling.
NAME_NAMESAKE_WEIGHT = 0.02
NAME_WORDS_PATTERN = "[^a-z0-9]+"  # the split of search_name in migration 0010's index; keep them equal


def name_words(folded: str) -> list[str]:
    """The words of a folded name, split as the word index of migration 0010 splits ``search_name``."""
    return [word for word in re.split(NAME_WORDS_PATTERN, folded) if word]


class NameWords(Func):
    """``search_name``'s words: the expression migration 0010 indexes (GIN), written exactly as indexed."""

    template = f"regexp_split_to_array(%(expressions)s, '{NAME_WORDS_PATTERN}')"
    output_field = ArrayField(TextField())


def word_edits(word: str) -> set[str]:
    """Every word one keyboard slip away: a letter dropped, two swapped, one replaced or one added."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return (
        {left + right[1:] for left, right in splits if right}
        | {left + right[1] + right[0] + right[2:] for left, right in splits if len(right) > 1}
        | {left + c + right[1:] for left, right in splits if right for c in letters}
        | {left + c + right for left, right in splits for c in letters}
    )


# How far a dictionary word is from a word of the term: the word itself, one slip away, or only similar.
WORD_EXACT, WORD_ONE_SLIP, WORD_SIMILAR = 0, 1, 2
# What each weighs in a name's rank, per word of the term: a name one slip from the term beats one that only
# shares trigrams with it ("ellitot": Elliott before Ellis), whatever their trigram similarity.
WORD_SCORES = {WORD_EXACT: 1.0, WORD_ONE_SLIP: 0.8, WORD_SIMILAR: 0.5}


class RankWords(Func):
    """``search_name``'s words for the rank, split on the punctuation of names: five times cheaper than the
    indexed split by a regular expression, which the rank would run several times on every name found."""

    template = "string_to_array(translate(%(expressions)s, '-''.,', '    '), ' ')"
    output_field = ArrayField(TextField())


def name_word_corrections(words: list[str]) -> dict[str, dict[str, int]]:
    """For each word, the dictionary words it may be a misspelling of and how far they are from it
    (``WORD_EXACT``, ``WORD_ONE_SLIP``, ``WORD_SIMILAR``), in one query: the words one slip away (looked up by
    key: a slip changes too many of a short word's trigrams), and the most similar words above
    ``pg_trgm.similarity_threshold`` (the dictionary's trigram index: several slips in a longer word; the
    threshold is set per connection in the settings, ``CDP_NAME_SEARCH_SIMILARITY``)."""
    words = sorted({word for word in words if len(word) >= NAME_WORD_MIN_LENGTH})
    corrections: dict[str, dict[str, int]] = {word: {} for word in words}
    if not words:
        return corrections
    # "term=edit term=edit ...": one string parameter (words are [a-z0-9]), cheap to send where a thousand
    # array elements each quoted on the client are not.
    edits = " ".join(f"{word}={edit}" for word in words for edit in word_edits(word) | {word})
    # One branch per word, its word written in it: a lateral join over the words hides them from the planner,
    # which then scans the whole dictionary instead of its trigram index.
    similar = (
        f"(SELECT %s, word, {WORD_SIMILAR} FROM profiles_name_word WHERE word %% %s "
        "ORDER BY similarity(word, %s) DESC, word LIMIT %s)"
    )
    one_slip = (
        f"SELECT split_part(edit, '=', 1), word, {WORD_ONE_SLIP} "
        "FROM unnest(string_to_array(%s, ' ')) AS edit JOIN profiles_name_word ON word = split_part(edit, '=', 2)"
    )
    params = [value for word in words for value in (word, word, word, NAME_WORD_CORRECTIONS)] + [edits]
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join([similar] * len(words) + [one_slip]), params)
        for word, correction, distance in cursor.fetchall():
            distance = WORD_EXACT if correction == word else distance
            corrections[word][correction] = min(distance, corrections[word].get(correction, distance))
    return corrections


def _name_search_postgresql(queryset: QuerySet[Profile], identifier_hit: Q, folded: str) -> QuerySet[Profile]:
    from django.contrib.postgres.search import TrigramSimilarity

    # The whole name as typed, or its beginning ("john sm"), on search_name's btree (varchar_pattern_ops) index.
    name_hit = Q(search_name=folded) | Q(search_name__startswith=folded)
    words = name_words(folded)
    corrections = name_word_corrections(words)
    # Ranked by how close each word's correction is, then (tie-breakers) by the trigram similarity of the whole
    # name, the term's first word first in the name ("preston anthony" is not "Anthony Preston"), and among
    # equally close spellings by how many namesakes were found.
    closeness = TrigramSimilarity("search_name", Value(folded)) * Value(0.1) + Value(
        NAME_NAMESAKE_WEIGHT
    ) * Ln(Window(Count("*"), partition_by=[F("search_name")]))
    if corrections and all(corrections.values()):
        words_hit = Q()
        for candidates in corrections.values():
            words_hit &= Q(name_words__overlap=list(candidates))
            by_distance = defaultdict(list)
            for candidate, distance in candidates.items():
                by_distance[distance].append(candidate)
            # Every name found has one of the candidates: the farthest needs no test.
            *nearer, farthest = sorted(by_distance)
            word_score = Case(
                *(
                    When(rank_words__overlap=by_distance[distance], then=Value(WORD_SCORES[distance]))
                    for distance in nearer
                ),
                default=Value(WORD_SCORES[farthest]),
                output_field=FloatField(),
            )
            closeness += word_score / Value(float(len(corrections)))
        name_hit |= words_hit
        if first := corrections.get(words[0]):
            closeness += Case(
                When(
                    Q.create([("search_name__startswith", f"{word} ") for word in first], connector=Q.OR),
                    then=Value(0.05),
                ),
                default=Value(0.0),
                output_field=FloatField(),
            )
    return (
        queryset.alias(name_words=NameWords("search_name"), rank_words=RankWords("search_name"))
        .filter(identifier_hit | name_hit)
        .annotate(
            search_rank=Case(
                When(identifier_hit, then=Value(RANK_IDENTIFIER)),
                When(search_name=folded, then=Value(RANK_NAME_EXACT)),
                When(search_name__startswith=folded, then=Value(RANK_NAME_PREFIX)),
                default=closeness,
                output_field=FloatField(),
            )
        )
    )


class SearchPaginator(Paginator):
    """A page of search results and their count in one query (``COUNT(*) OVER ()``), where Django's paginator
    runs the search twice: once to count, once for the page. ``page_number`` is the page that will be asked
    for; another page, or one past the end, falls back to the two queries."""

    def __init__(self, object_list, per_page, orphans=0, allow_empty_first_page=True, *, page_number=1):
        super().__init__(object_list, per_page, orphans, allow_empty_first_page)
        try:
            self.page_number = max(1, int(page_number))
        except (TypeError, ValueError):
            self.page_number = 1
        self.counted_page: list | None = None

    @cached_property
    def count(self) -> int:
        bottom = (self.page_number - 1) * self.per_page
        rows = list(
            self.object_list.annotate(search_total=Window(Count("*")))[bottom : bottom + self.per_page]
        )
        if not rows:
            return super().count
        self.counted_page = rows
        return rows[0].search_total

    def page(self, number):
        number = self.validate_number(number)
        if self.counted_page is not None and number == self.page_number:
            return self._get_page(self.counted_page, number, self)
        return super().page(number)


def profile_detail(*, profile: Profile) -> dict:
    """Golden attributes with lineage and every candidate value, identities, source records, merges.

    A fixed number of queries, whatever the size of the profile."""
    records = list(
        SourceRecord.objects.filter(profile=profile, deleted_at__isnull=True)
        .select_related("source")
        .order_by("-source__trust_rank", "-version_at")
    )
    candidates: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        for name, value in record.attributes.items():
            candidates[name].append(
                {
                    "value": value,
                    "source": record.source.slug,
                    "record": record.pk,
                    "external_id": record.external_id,
                    "trust_rank": record.source.trust_rank,
                    "observed_at": record.version_at,
                }
            )
    attributes = {
        name: {"value": value, **profile.lineage.get(name, {}), "candidates": candidates.get(name, [])}
        for name, value in profile.golden.items()
    }
    # Tombstones point straight at their final survivor, so this also finds merges into profiles that were
    # themselves merged into this one later.
    merges = MergeEvent.objects.filter(Q(survivor=profile) | Q(survivor__merged_into=profile)).order_by(
        "created_at"
    )
    return {
        "id": profile.pk,
        "status": profile.status,
        "display_name": profile.display_name,
        "created_at": profile.created_at,
        "updated_at": profile.updated_at,
        "attributes": attributes,
        "identities": [
            {"type": kind, "value": value}
            for kind, value in Identity.objects.filter(profile=profile)
            .order_by("type", "value")
            .values_list("type", "value")
        ],
        "records": [
            {
                "id": record.pk,
                "source": record.source.slug,
                "external_id": record.external_id,
                "attributes": record.attributes,
                "identifiers": [{"type": kind, "value": value} for kind, value in record.identifiers],
                "source_updated_at": record.source_updated_at,
                "version_at": record.version_at,
                "created_at": record.created_at,
                "updated_at": record.updated_at,
            }
            for record in records
        ],
        "merges": [
            {
                "merged": m.merged_id,
                "rule": m.rule,
                "evidence": m.evidence,
                "actor": m.actor,
                "at": m.created_at,
            }
            for m in merges
        ],
    }


__all__ = [
    "InvalidValue",
    "SearchPaginator",
    "UnknownIdentifierType",
    "identifier_normalise",
    "profile_detail",
    "profile_get",
    "profile_list",
    "profile_lookup",
    "profile_search",
]
