"""FEBRL-style synthetic person records with ground truth, deterministic by seed.

``febrl_like(originals=2000, duplicates=3000)`` builds records shaped like the FEBRL data sets
(Christen's Freely Extensible Biomedical Record Linkage generator, the data behind the FEBRL3 and
FEBRL4 benchmarks) from word lists of its own: the FEBRL files themselves are not used. Columns
are text, ``None`` where a value is missing::

    rec_id, given_name, surname, street_number, address_1, address_2, suburb, postcode, state,
    date_of_birth (yyyymmdd), soc_sec_id (7 digits; only with_national_id)

Originals are clean (only ``address_2`` is often empty, as in FEBRL). Names, streets and suburbs
are drawn with Zipf-Mandelbrot frequencies, so a few values are very common (``smith`` is about
one surname in 30) and term frequency matters. Each suburb has one postcode and state; postcodes
are 4 digits (the Northern Territory's start with 0, which must survive as text). Dates of birth
are uniform over 1920-01-01 .. 2010-12-31.

About ``HOUSEHOLD_SHARE`` of the originals are relatives of another original: same surname and
address (street number, address_1/2, suburb, postcode, state), a different given name, date of
birth and national id. They are distinct persons, the hard non-matches that test precision.

Each duplicate is derived from its original and gets 1-3 corruptions (45% / 35% / 20%, FEBRL's
default of at most 3 per record). At most one touches the names (share of duplicates):

    typo:given_name 20%   typo:surname 20%   typo:both_names 15%   swap_names 5%
    phonetic:<name> 10% (ph/f, c/k, mc/mac, doubled letters ...)   none 30%

A typo is an insertion, deletion, substitution (a QWERTY neighbour) or transposition, on the
first letter a quarter of the time (which changes the soundex code). Where no spelling rule fits
either name, the phonetic variant becomes a surname typo (about 2% of duplicates), and a swap of
"james james" also does; the log says what was done. The other corruptions are drawn without
replacement with these weights (realised shares: the weights, a little less for the largest)::

    dob 25% (day/month swapped when the day is <= 12: 40%; missing: 20%; else one digit, still a
        valid date)
    postcode:digit 15%   street_number:changed 15%   typo:suburb 12%   typo:address_1 12%
    soc_sec_id 18% (one digit 70%, missing 30%; without national ids it is not drawn and the
        others come a little more often)
    missing:<field> 8% (one of the names, street_number, address_1, address_2, suburb, postcode,
        state; never a field another corruption of the record touched)

``truth`` has one row per record: ``rec_id``, ``person_id``, ``household_id`` (the person id of
the relative whose address the others took, for every member of a household; else null),
``original`` and ``corruptions`` (the kinds applied, ``;``-separated, empty for originals). Record
ids are opaque (``rec-0001234``; ``a-``/``b-`` in link mode) and rows are shuffled: nothing about
the truth shows in the data.

``mode="link"`` gives FEBRL4's shape: ``left`` holds every original, ``right`` one duplicate each
of ``duplicates`` of them (all of them when ``duplicates == originals``), so every right record
matches exactly one left record.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Literal

import numpy as np
import pandas as pd

COLUMNS = (
    "rec_id", "given_name", "surname", "street_number", "address_1", "address_2",
    "suburb", "postcode", "state", "date_of_birth", "soc_sec_id",
)
TRUTH_COLUMNS = ("rec_id", "person_id", "household_id", "original", "corruptions")

#: share of originals that are relatives of another original (same surname and address)
HOUSEHOLD_SHARE = 0.05
#: P(1, 2, 3 corruptions) per duplicate
CORRUPTION_COUNTS = (0.45, 0.35, 0.20)
#: the name corruption of a duplicate (at most one); "none" leaves both names alone
NAME_CORRUPTIONS = {
    "none": 0.30, "typo:given_name": 0.20, "typo:surname": 0.20, "typo:both_names": 0.15,
    "swap_names": 0.05, "phonetic": 0.10,
}
#: weights of the other corruptions, drawn without replacement for the remaining count
OTHER_CORRUPTIONS = {
    "dob": 0.25, "postcode": 0.15, "street_number": 0.15, "typo:suburb": 0.12,
    "typo:address_1": 0.12, "soc_sec_id": 0.18, "missing": 0.08,
}
FIRST_LETTER_TYPO_SHARE = 0.25
DOB_RANGE = (date(1920, 1, 1), date(2010, 12, 31))
#: a corrupted date of birth stays a plausible date
_DOB_VALID_YEARS = (1900, 2024)
MISSABLE = ("given_name", "surname", "street_number", "address_1", "address_2", "suburb", "postcode", "state")

# Word lists written for this module (common English-speaking and Australian names and places).
# Nicknames that conf/identity.yaml maps to a formal name (bob, bill, liz ...) are left out, so two
# distinct given names are never the same name to the tool under test.
GIVEN_NAMES = tuple("""
james john robert michael william david richard joseph thomas charles christopher daniel matthew
anthony mark donald steven paul andrew joshua kenneth kevin brian george timothy ronald edward
jason jeffrey ryan jacob gary nicholas eric jonathan stephen larry justin scott brandon benjamin
samuel gregory alexander frank patrick raymond jack dennis jerry tyler aaron adam nathan henry
douglas zachary peter kyle noah ethan jeremy walter christian keith roger terry austin sean gerald
carl harold dylan arthur lawrence jordan jesse bryan bruce gabriel logan alan albert wayne randy
vincent mason roy ralph russell bradley philip eugene lachlan cooper riley liam jayden oliver
hamish angus callum declan harrison mitchell blake brodie jarrod darren shane craig glenn troy dale
rhys fletcher hudson archer lucas xavier finn tristan nigel graham colin barry trevor murray neville
clive warren brett jarvis cameron stuart ross
mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy sandra margaret
ashley kimberly emily donna michelle carol amanda melissa deborah stephanie dorothy rebecca sharon
laura cynthia amy kathleen angela shirley brenda emma anna pamela nicole samantha katherine
christine helen debra rachel carolyn janet maria catherine heather diane olivia julie joyce
victoria ruth virginia lauren kelly christina joan evelyn judith andrea hannah megan cheryl
jacqueline martha madison teresa gloria sara janice ann kathryn abigail sophia frances jean alice
judy isabella julia grace amber denise danielle marilyn beverly charlotte natalie theresa diana
brittany doris kayla alexis lori marie chloe jade mia ruby zoe lily ella matilda isla sienna harper
ava scarlett georgia holly jasmine tahlia caitlin bree kirra leanne tracey narelle kylie belinda
joanne wendy rhonda lorraine gwen beryl mavis noeline dianne jillian vanessa monique renee alison
fiona hayley bianca shannon erin kristen naomi leah tegan courtney brooke tamsin imogen eloise
""".split())

SURNAMES = tuple("""
smith jones williams brown wilson taylor johnson white martin anderson thompson nguyen thomas
walker harris lee ryan robinson kelly king davis wright evans roberts green hall wood jackson clarke
patel khan lewis james phillips mitchell turner campbell scott young allen cooper baker murphy
edwards hill morris ward hughes mcdonald stewart murray collins watson marshall johnston graham
bell miller clark kennedy moore ross price russell wallace morgan bennett hunt carter reid black
mills gray cook shaw cole parker simpson dixon chapman ellis hamilton francis henderson holmes
hudson hunter hart kerr lane lawrence lloyd mason matthews mclean newman nicholson owen palmer
pearce perry porter powell quinn rees richards riley rogers rose saunders sharp spencer stevens
stone sullivan sutton tucker walsh warren webb webster west whitehead williamson woods fraser
gibson grant griffiths harvey hayes howard jenkins knight lambert mackenzie maxwell mcintyre
mckenzie moran morton nolan obrien oconnor payne pope richardson robertson schmidt schultz sinclair
stephens thomson tran vella wong chen zhang li wang singh kaur papadopoulos rossi russo ferrari
esposito bianchi romano costa fitzgerald doherty brennan byrne gallagher kavanagh keane lynch
mahoney mcgrath mcmahon oneill power regan sheehan whelan bailey barker barnes barrett bates bishop
blake bradley brooks burke burns butler cameron carr chambers christie coleman connolly crawford
cunningham curtis daly davidson dawson day dean dunn elliott farrell ferguson fisher fleming ford
foster fox gardner gill gordon graves hale hammond hanson hardy harrison hawkins hayward higgins
hobbs hodgson holland hopkins horton houston howe humphries jacobs jarvis jordan kemp knowles lamb
lawson lucas lyons mann marsh mccarthy mcdougall mckay mcleod meyer moss muller myers norris oliver
page parsons pearson peters pritchard randall reynolds rhodes rice robson rowe rowland sanders
sharpe simmons slater steele stanley stevenson stuart summers swan thornton todd townsend vaughan
wade walters watts weaver wells wheeler whittaker wilkinson willis wilkins winter yates
""".split())

SUBURBS = tuple("""
blacktown parramatta penrith liverpool campbelltown hornsby chatswood bankstown hurstville ryde
epping castle_hill baulkham_hills kellyville rouse_hill marsden_park quakers_hill mount_druitt
st_marys glenmore_park cronulla miranda sutherland engadine manly dee_why mona_vale brookvale
bondi randwick coogee maroubra newtown marrickville ashfield burwood strathfield lidcombe auburn
granville merrylands fairfield cabramatta wollongong dapto shellharbour kiama nowra newcastle
maitland cessnock charlestown belmont gosford wyong tuggerah erina terrigal orange bathurst dubbo
tamworth armidale lismore ballina grafton wagga_wagga albury goulburn queanbeyan belconnen
tuggeranong gungahlin woden kambah ngunnawal dickson braddon fitzroy carlton brunswick coburg
preston reservoir epping_north craigieburn broadmeadows sunbury melton werribee point_cook
hoppers_crossing footscray sunshine st_albans keilor essendon moonee_ponds box_hill doncaster
ringwood croydon bayswater frankston dandenong narre_warren berwick pakenham cranbourne geelong
ballarat bendigo shepparton mildura warrnambool traralgon sale bairnsdale wodonga toowoomba
ipswich logan_central springwood beenleigh southport surfers_paradise robina nerang coomera
caboolture redcliffe chermside aspley indooroopilly toowong kenmore sunnybank carindale
cleveland capalaba maroochydore caloundra noosaville nambour gympie bundaberg hervey_bay rockhampton
gladstone mackay townsville cairns mount_isa elizabeth salisbury modbury tea_tree_gully
golden_grove prospect norwood unley glenelg marion morphett_vale noarlunga mount_barker gawler
murray_bridge whyalla port_augusta mount_gambier joondalup wanneroo midland morley mirrabooka
scarborough subiaco fremantle cannington armadale rockingham mandurah baldivis bunbury busselton
albany geraldton kalgoorlie hobart glenorchy kingston sandy_bay launceston devonport burnie ulverstone
darwin palmerston casuarina alice_springs katherine
""".split())
SUBURBS = tuple(w.replace("_", " ") for w in SUBURBS)

STREET_NAMES = tuple("""
george high king queen william elizabeth victoria albert edward charles church station railway
park bridge market mill school hill river beach ocean bay harbour forest wattle banksia acacia
waratah boronia grevillea eucalyptus jacaranda kurrajong melaleuca casuarina bottlebrush tea_tree
oak elm ash pine cedar maple willow birch poplar laurel myrtle hawthorn heather lavender rose
camellia magnolia orchid jasmine violet daisy lily iris tulip marigold poppy clover fern ivy
macquarie hume sturt flinders cook bass banks phillip hunter bligh lachlan darling murray
hawkesbury nepean parramatta windsor richmond bathurst goulburn berrima camden campbell bourke
collins lonsdale spencer swanston russell exhibition latrobe
queensberry grattan lygon rathdowne nicholson smith brunswick johnston gertrude
wellington nelson raglan wolseley kitchener haig monash gallipoli anzac kokoda tobruk
mitchell kennedy menzies curtin chifley deakin barton fisher lyons scullin whitlam hawke
gilmore lawson paterson kendall slessor wright mackellar white stead franklin boyd
dryandra hakea callistemon lomandra dianella correa eremophila westringia
""".split())
STREET_NAMES = tuple(w.replace("_", " ") for w in STREET_NAMES)
STREET_TYPES = ("street", "road", "avenue", "place", "crescent", "close", "court", "drive", "parade", "circuit", "lane", "way")
STREET_TYPE_WEIGHTS = (0.34, 0.18, 0.12, 0.09, 0.07, 0.05, 0.05, 0.04, 0.02, 0.02, 0.01, 0.01)
PROPERTY_NAMES = tuple("""
rosedale dunroamin glenview hillcrest fairview the_oaks the_pines woodlands riverview bayview
sunnyside willowbank kurrajong_park wattle_grove greenacres highfield lakeside meadowbank
""".split())
PROPERTY_NAMES = tuple(w.replace("_", " ") for w in PROPERTY_NAMES)
#: FEBRL-like address_2: empty, a unit number or a property name
ADDRESS_2_SHARE = 0.35

#: state code, postcode range (inclusive) and share of suburbs
STATES = (
    ("nsw", 2000, 2999, 0.32), ("vic", 3000, 3999, 0.26), ("qld", 4000, 4999, 0.20),
    ("wa", 6000, 6797, 0.10), ("sa", 5000, 5799, 0.07), ("tas", 7000, 7799, 0.02),
    ("act", 2600, 2618, 0.02), ("nt", 800, 899, 0.01),
)

# QWERTY neighbours: FEBRL's substitutions and insertions favour keys next to the intended one.
_KEYBOARD_ROWS = ("qwertyuiop", "asdfghjkl", "zxcvbnm")
_NEIGHBOURS: dict[str, str] = {}
for _r, _row in enumerate(_KEYBOARD_ROWS):
    for _c, _ch in enumerate(_row):
        near = []
        for _dr in (-1, 0, 1):
            rr = _r + _dr
            if 0 <= rr < len(_KEYBOARD_ROWS):
                for _dc in (-1, 0, 1):
                    cc = _c + _dc
                    if (_dr, _dc) != (0, 0) and 0 <= cc < len(_KEYBOARD_ROWS[rr]):
                        near.append(_KEYBOARD_ROWS[rr][cc])
        _NEIGHBOURS[_ch] = "".join(near)

#: spelling variants that sound alike (pattern, replacement), one occurrence replaced
PHONETIC_RULES = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"ph", "f"),
        (r"(?<![fp])f(?!f)", "ph"),
        (r"ck", "k"),
        (r"(?<![cs])c(?=[aoulr])", "k"),
        (r"k(?=[aou])", "c"),
        (r"y$", "ie"),
        (r"ie$", "y"),
        (r"ey$", "y"),
        (r"ou", "ow"),
        (r"ee", "ea"),
        (r"z", "s"),
        (r"(?<=[aeiou])s(?=[aeiou])", "z"),
        (r"([bdglmnprt])\1", r"\1"),
        (r"(?<=[aeiou])([lnrt])(?=[aeiouy])", r"\1\1"),
        (r"^mc", "mac"),
        (r"^mac", "mc"),
        (r"th", "t"),
        (r"(?<=[^aeiou])y(?=[^aeiou])", "i"),
        (r"(?<=[^aeiou])i(?=[^aeiou])", "y"),
        (r"son$", "sen"),
        (r"(?<=[^o])on$", "en"),
        (r"ae", "e"),
        (r"(?<=wn|rk|nn)$", "e"),
        (r"(?<=[kn])e$", ""),
        (r"ea", "ee"),
        (r"an$", "en"),
        (r"(?<=^[rb])y(?=a)", "i"),
        (r"(?<=^[rb]r)y(?=a)", "i"),
        (r"wa(?=l)", "wo"),
        (r"ss", "s"),
        (r"^ch(?=[rl])", "k"),
        (r"ay", "ai"),
        (r"ai", "ay"),
        (r"au", "aw"),
        (r"ew", "ue"),
    )
)


@dataclass(frozen=True)
class SyntheticRecords:
    """Generated records and their truth. ``records`` in dedupe mode; ``left``/``right`` in link mode."""

    mode: Literal["dedupe", "link"]
    truth: pd.DataFrame
    records: pd.DataFrame | None = None
    left: pd.DataFrame | None = None
    right: pd.DataFrame | None = None

    def all_records(self) -> pd.DataFrame:
        """Every record in one frame (link mode: left then right)."""
        if self.mode == "dedupe":
            return self.records
        return pd.concat([self.left, self.right], ignore_index=True)


def to_identity_mapping(with_national_id: bool) -> dict[str, Any]:
    """The ``c360 identity --mapping`` content for these columns (write it with ``yaml.safe_dump``)."""
    mapping: dict[str, Any] = {
        "record_id": "rec_id",
        "source": "febrl_like",
        "columns": {
            "first_name": "given_name",
            "last_name": "surname",
            "date_of_birth": {"column": "date_of_birth", "format": "yyyyMMdd"},
            "street": ["street_number", "address_1"],
            "city": "suburb",
            "postcode": "postcode",
        },
    }
    if with_national_id:
        mapping["other_ids"] = {"soc_sec_id": "soc_sec_id"}
    return mapping


def _zipf_weights(n: int, *, q: float, s: float) -> np.ndarray:
    """Zipf-Mandelbrot: rank k has weight 1/(k+q)^s; q flattens the head."""
    w = 1.0 / (np.arange(1, n + 1) + q) ** s
    return w / w.sum()


def _draw(rng: np.random.Generator, values: tuple[str, ...], size: int, *, q: float, s: float = 1.0) -> np.ndarray:
    return np.asarray(values, dtype=object)[rng.choice(len(values), size=size, p=_zipf_weights(len(values), q=q, s=s))]


def _typo(rng: np.random.Generator, word: str) -> str:
    """One insertion, deletion, substitution or transposition; on the first letter a quarter of the time."""
    for _ in range(20):
        op = ("insert", "delete", "substitute", "transpose")[rng.integers(4)]
        if op == "delete" and len(word) < 3 or op == "transpose" and len(word) < 2:
            continue
        last = len(word) - (2 if op == "transpose" else 1) + (1 if op == "insert" else 0)
        first = rng.random() < FIRST_LETTER_TYPO_SHARE or last < 1
        pos = 0 if first else int(rng.integers(1, last + 1))
        if op == "insert":
            anchor = word[min(pos, len(word) - 1)]
            near = _NEIGHBOURS.get(anchor, "aeiou")
            new = word[:pos] + near[rng.integers(len(near))] + word[pos:]
        elif op == "delete":
            new = word[:pos] + word[pos + 1:]
        elif op == "substitute":
            near = _NEIGHBOURS.get(word[pos], "aeiou")
            new = word[:pos] + near[rng.integers(len(near))] + word[pos + 1:]
        else:
            new = word[:pos] + word[pos + 1] + word[pos] + word[pos + 2:]
        if new != word:
            return new
    return word + "e"


def _phonetic(rng: np.random.Generator, word: str) -> str | None:
    """A sound-alike spelling (one rule at one place), or None when no rule applies."""
    options = [(rule, m) for rule, _ in PHONETIC_RULES for m in rule.finditer(word)]
    if not options:
        return None
    rule, match = options[rng.integers(len(options))]
    replacement = dict(PHONETIC_RULES)[rule]
    new = word[:match.start()] + match.expand(replacement) + word[match.end():]
    return new if new != word else None


def _digit_typo(rng: np.random.Generator, text: str, positions: range | None = None) -> str:
    positions = positions or range(len(text))
    pos = positions[int(rng.integers(len(positions)))]
    digit = str((int(text[pos]) + int(rng.integers(1, 10))) % 10)
    return text[:pos] + digit + text[pos + 1:]


def _valid_dob(text: str) -> bool:
    try:
        d = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        return False
    return _DOB_VALID_YEARS[0] <= d.year <= _DOB_VALID_YEARS[1]


def _corrupt_dob(rng: np.random.Generator, dob: str) -> tuple[str | None, str]:
    day, month = int(dob[6:8]), int(dob[4:6])
    roll = rng.random()
    if roll < 0.2:
        return None, "missing:date_of_birth"
    if day <= 12 and day != month and roll < 0.6:
        return dob[:4] + dob[6:8] + dob[4:6], "dob:day_month_swap"
    for _ in range(50):
        # the century digit (19xx -> 29xx) is never a plausible slip
        new = _digit_typo(rng, dob, range(2, 8))
        if new != dob and _valid_dob(new):
            return new, "dob:digit"
    return dob[:7] + str((int(dob[7]) + 1) % 10 or 1), "dob:digit"


def _change_street_number(rng: np.random.Generator, number: str) -> str:
    roll = rng.random()
    if roll < 0.4 and len(number) >= 2 and len(set(number)) > 1:
        i = int(rng.integers(len(number) - 1))
        while number[i] == number[i + 1]:
            i = (i + 1) % (len(number) - 1)
        new = number[:i] + number[i + 1] + number[i] + number[i + 2:]
    elif roll < 0.7:
        new = str(max(1, int(number) + int(rng.choice([-1, 1])) * int(rng.integers(1, 11))))
    else:
        new = _digit_typo(rng, number).lstrip("0") or "1"
    return new if new != number else str(int(number) + 1)


def _people(rng: np.random.Generator, n: int, with_national_id: bool) -> pd.DataFrame:
    """``n`` distinct persons (columns as the records, plus person_id and household_id)."""
    # every state gets its share of the suburbs (at least one): Northern Territory postcodes start with 0
    quota = [max(1, round(s[3] * len(SUBURBS))) for s in STATES]
    quota[0] += len(SUBURBS) - sum(quota)
    suburb_state = rng.permutation(np.repeat(np.arange(len(STATES)), quota))
    suburb_postcode = np.array([
        f"{rng.integers(STATES[k][1], STATES[k][2] + 1):04d}" for k in suburb_state
    ], dtype=object)
    suburb_idx = rng.choice(len(SUBURBS), size=n, p=_zipf_weights(len(SUBURBS), q=10, s=1.0))
    streets = np.char.add(
        np.char.add(_draw(rng, STREET_NAMES, n, q=5).astype(str), " "),
        np.asarray(STREET_TYPES)[rng.choice(len(STREET_TYPES), size=n, p=STREET_TYPE_WEIGHTS)],
    )
    has_address_2 = rng.random(n) < ADDRESS_2_SHARE
    unit = rng.random(n) < 0.5
    address_2 = np.where(
        unit,
        np.char.add(np.where(rng.random(n) < 0.7, "unit ", "flat "), rng.integers(1, 40, n).astype(str)),
        _draw(rng, PROPERTY_NAMES, n, q=2).astype(str),
    ).astype(object)
    address_2[~has_address_2] = None
    span = (DOB_RANGE[1] - DOB_RANGE[0]).days + 1
    dobs = [(DOB_RANGE[0] + timedelta(days=int(d))).strftime("%Y%m%d") for d in rng.integers(0, span, n)]
    people = pd.DataFrame({
        "person_id": np.arange(n, dtype=np.int64),
        "given_name": _draw(rng, GIVEN_NAMES, n, q=5),
        "surname": _draw(rng, SURNAMES, n, q=5),
        "street_number": rng.choice(np.arange(1, 301), size=n, p=_zipf_weights(300, q=3, s=1.1)).astype(str).astype(object),
        "address_1": streets.astype(object),
        "address_2": address_2,
        "suburb": np.asarray(SUBURBS, dtype=object)[suburb_idx],
        "postcode": suburb_postcode[suburb_idx],
        "state": np.asarray([STATES[k][0] for k in suburb_state], dtype=object)[suburb_idx],
        "date_of_birth": np.asarray(dobs, dtype=object),
        "soc_sec_id": rng.choice(9_000_000, size=n, replace=False) + 1_000_000,
    })
    people["soc_sec_id"] = people["soc_sec_id"].astype(str).astype(object)

    # relatives: a person joins another's household (surname and address); distinct given name and
    # dob. Plain arrays and a set per household: linear in n (a frame lookup per member was quadratic)
    relatives = int(round(n * HOUSEHOLD_SHARE)) if n >= 2 else 0
    order = rng.permutation(n)
    members, heads = order[:relatives], order[relatives:]
    address = ["surname", "street_number", "address_1", "address_2", "suburb", "postcode", "state"]
    values = {c: people[c].to_numpy(dtype=object).copy() for c in [*address, "given_name", "date_of_birth"]}
    household = np.full(n, -1, dtype=np.int64)
    names_in: dict[int, set] = {}  # a household's given names and dates of birth so far
    dobs_in: dict[int, set] = {}
    for member in members:
        head = int(heads[rng.integers(len(heads))])
        for column in address:
            values[column][member] = values[column][head]
        household[[head, member]] = head
        names_in.setdefault(head, {values["given_name"][head]})
        dobs_in.setdefault(head, {values["date_of_birth"][head]})
        # the member's own name and dob count as taken, as they did when this looked the household up
        taken_names = names_in[head] | {values["given_name"][member]}
        taken_dobs = dobs_in[head] | {values["date_of_birth"][member]}
        name = values["given_name"][member]
        while name in taken_names:
            name = _draw(rng, GIVEN_NAMES, 1, q=5)[0]
        dob = values["date_of_birth"][member]
        while dob in taken_dobs:
            dob = (DOB_RANGE[0] + timedelta(days=int(rng.integers(0, span)))).strftime("%Y%m%d")
        values["given_name"][member] = name
        values["date_of_birth"][member] = dob
        names_in[head].add(name)
        dobs_in[head].add(dob)
    for column, array in values.items():
        people[column] = array
    people["household_id"] = pd.array([int(h) if h >= 0 else pd.NA for h in household], dtype="Int64")
    if not with_national_id:
        people["soc_sec_id"] = None
    return people


def _duplicate_counts(rng: np.random.Generator, originals: int, duplicates: int, most: int) -> np.ndarray:
    """Duplicates per original: FEBRL's long tail (1 often, ``most`` rarely), summing to ``duplicates``."""
    counts = np.zeros(originals, dtype=np.int64)
    p = 1.0 / np.arange(1, most + 1) ** 2
    remaining = duplicates
    for i in rng.permutation(originals):
        if remaining == 0:
            break
        counts[i] = min(remaining, int(rng.choice(most, p=p / p.sum())) + 1)
        remaining -= counts[i]
    while remaining:
        room = np.flatnonzero(counts < most)
        chosen = rng.choice(room, size=min(remaining, len(room)), replace=False)
        counts[chosen] += 1
        remaining -= len(chosen)
    return counts


def _corrupt(rng: np.random.Generator, original: dict, with_national_id: bool) -> tuple[dict, list[str]]:
    """A duplicate of ``original`` with 1-3 corruptions, and the kinds applied."""
    record = dict(original)
    applied: list[str] = []
    touched: set[str] = set()
    total = int(rng.choice(3, p=CORRUPTION_COUNTS)) + 1
    name_kind = rng.choice(list(NAME_CORRUPTIONS), p=list(NAME_CORRUPTIONS.values()))
    if name_kind == "phonetic":
        fields = ["given_name", "surname"] if rng.random() < 0.5 else ["surname", "given_name"]
        for field in fields:
            new = _phonetic(rng, record[field])
            if new is not None:
                record[field] = new
                applied.append(f"phonetic:{field}")
                touched.add(field)
                break
        else:
            name_kind = "typo:surname"
    if name_kind == "swap_names" and record["given_name"] == record["surname"]:
        name_kind = "typo:surname"  # "james james" swapped is the same record
    if name_kind in ("typo:given_name", "typo:surname", "typo:both_names"):
        fields = {"typo:given_name": ["given_name"], "typo:surname": ["surname"]}.get(name_kind, ["given_name", "surname"])
        for field in fields:
            record[field] = _typo(rng, record[field])
            touched.add(field)
        applied.append(name_kind)
    elif name_kind == "swap_names":
        record["given_name"], record["surname"] = record["surname"], record["given_name"]
        touched.update(("given_name", "surname"))
        applied.append(name_kind)

    others = {k: w for k, w in OTHER_CORRUPTIONS.items() if with_national_id or k != "soc_sec_id"}
    wanted = total - (name_kind != "none")
    kinds = list(rng.choice(list(others), size=wanted, replace=False, p=np.array(list(others.values())) / sum(others.values()))) if wanted else []
    # missing last: it blanks a field no other corruption of this record touched
    kinds.sort(key=lambda k: k == "missing")
    for kind in kinds:
        if kind == "dob":
            record["date_of_birth"], label = _corrupt_dob(rng, record["date_of_birth"])
            touched.add("date_of_birth")
            applied.append(label)
        elif kind == "postcode":
            record["postcode"] = _digit_typo(rng, record["postcode"])
            touched.add("postcode")
            applied.append("postcode:digit")
        elif kind == "street_number":
            record["street_number"] = _change_street_number(rng, record["street_number"])
            touched.add("street_number")
            applied.append("street_number:changed")
        elif kind in ("typo:suburb", "typo:address_1"):
            field = kind.split(":")[1]
            record[field] = _typo(rng, record[field])
            touched.add(field)
            applied.append(kind)
        elif kind == "soc_sec_id":
            if rng.random() < 0.3:
                record["soc_sec_id"] = None
                applied.append("missing:soc_sec_id")
            else:
                record["soc_sec_id"] = _digit_typo(rng, record["soc_sec_id"])
                applied.append("soc_sec_id:digit")
            touched.add("soc_sec_id")
        else:
            candidates = [f for f in MISSABLE if f not in touched and record[f] is not None]
            field = candidates[int(rng.integers(len(candidates)))]
            record[field] = None
            touched.add(field)
            applied.append(f"missing:{field}")
    return record, applied


def febrl_like(
    *,
    originals: int,
    duplicates: int,
    seed: int = 42,
    mode: Literal["dedupe", "link"] = "dedupe",
    max_duplicates_per_original: int = 5,
    with_national_id: bool = True,
) -> SyntheticRecords:
    """``originals`` persons and ``duplicates`` corrupted copies of them (see the module docstring)."""
    if originals < 1:
        raise ValueError(f"originals must be at least 1, got {originals}")
    if duplicates < 0:
        raise ValueError(f"duplicates must be 0 or more, got {duplicates}")
    if mode not in ("dedupe", "link"):
        raise ValueError(f"mode must be 'dedupe' or 'link', got {mode!r}")
    if mode == "link" and duplicates > originals:
        raise ValueError(f"link mode has one duplicate per original at most: duplicates {duplicates} > originals {originals}")
    if max_duplicates_per_original < 1:
        raise ValueError(f"max_duplicates_per_original must be at least 1, got {max_duplicates_per_original}")
    if mode == "dedupe" and duplicates > originals * max_duplicates_per_original:
        raise ValueError(
            f"{duplicates} duplicates need more than {originals} originals x {max_duplicates_per_original} per original"
        )
    rng = np.random.default_rng(seed)
    people = _people(rng, originals, with_national_id)
    if mode == "link":
        counts = np.zeros(originals, dtype=np.int64)
        counts[rng.choice(originals, size=duplicates, replace=False)] = 1
    else:
        counts = _duplicate_counts(rng, originals, duplicates, max_duplicates_per_original)

    record_fields = [c for c in COLUMNS if c != "rec_id"]
    person_rows = people[record_fields].to_dict("records")
    rows: list[dict] = []
    meta: list[tuple[int, bool, str]] = []
    for pid, row in enumerate(person_rows):
        rows.append(row)
        meta.append((pid, True, ""))
    for pid in np.flatnonzero(counts):
        for _ in range(int(counts[pid])):
            dup, applied = _corrupt(rng, person_rows[pid], with_national_id)
            rows.append(dup)
            meta.append((int(pid), False, ";".join(applied)))

    frame = pd.DataFrame(rows, columns=record_fields).astype(object)
    frame = frame.where(frame.notna(), None)
    truth = pd.DataFrame(meta, columns=["person_id", "original", "corruptions"])
    truth["household_id"] = people["household_id"].take(truth["person_id"].to_numpy()).reset_index(drop=True)

    # opaque ids in shuffled order: neither the id nor the row position tells originals from duplicates
    if mode == "dedupe":
        order = rng.permutation(len(frame))
        frame, truth = frame.iloc[order].reset_index(drop=True), truth.iloc[order].reset_index(drop=True)
        ids = [f"rec-{i:07d}" for i in range(len(frame))]
    else:
        is_left = truth["original"].to_numpy()
        left_order = rng.permutation(np.flatnonzero(is_left))
        right_order = rng.permutation(np.flatnonzero(~is_left))
        order = np.concatenate([left_order, right_order])
        frame, truth = frame.iloc[order].reset_index(drop=True), truth.iloc[order].reset_index(drop=True)
        ids = [f"a-{i:07d}" for i in range(len(left_order))] + [f"b-{i:07d}" for i in range(len(right_order))]
    frame.insert(0, "rec_id", ids)
    truth.insert(0, "rec_id", ids)
    truth = truth[list(TRUTH_COLUMNS)]
    if not with_national_id:
        frame = frame.drop(columns=["soc_sec_id"])
    if mode == "dedupe":
        return SyntheticRecords(mode=mode, truth=truth, records=frame)
    n_left = int(is_left.sum())
    return SyntheticRecords(
        mode=mode,
        truth=truth,
        left=frame.iloc[:n_left].reset_index(drop=True),
        right=frame.iloc[n_left:].reset_index(drop=True),
    )
