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
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path

from bench.synthetic import ERP_MAPPING, SourceSpec

# --- Sources ------------------------------------------------------------------------------------------------

PEOPLE_SOURCES = [
    SourceSpec("crm", "crm", "US"),
    SourceSpec("erp", "erp", "US", ERP_MAPPING),
    SourceSpec("web", "web", "US"),
    SourceSpec("support", "support", "US"),
    SourceSpec("survey", "survey", "US"),
]
# How likely a person is to be known to each kind of source (relative weights when choosing sources).
SOURCE_REACH = {"crm": 0.35, "erp": 0.22, "web": 0.30, "support": 0.18, "survey": 0.12, "other": 0.15}
EXTERNAL_ID_PREFIX = {"crm": "CRM", "erp": "ERP", "web": "WEB", "support": "SUP", "survey": "SRV"}


def people_sources(count: int) -> list[SourceSpec]:
    """The first ``count`` sources: crm, erp, web, support, survey, then other1, other2, ..."""
    if count < 1:
        raise ValueError("at least one source")
    specs = PEOPLE_SOURCES[:count]
    specs += [SourceSpec(f"other{n}", "other", "US") for n in range(1, count - len(specs) + 1)]
    return specs


def external_id_prefix(slug: str) -> str:
    return EXTERNAL_ID_PREFIX.get(slug, slug.upper()) + "-"


def _words(text: str) -> list[str]:
    return text.split()


# --- Names and places ---------------------------------------------------------------------------------------
# Lists in order of popularity; a name's weight falls with its rank (Zipf), so a few names are common and the
# rest rare, as in real populations (term frequencies matter).

MALE_NAMES = """james robert john michael david william richard joseph thomas christopher charles daniel matthew
anthony mark donald steven andrew paul joshua kenneth kevin brian george timothy ronald jason edward jeffrey
ryan jacob gary nicholas eric jonathan stephen larry justin scott brandon benjamin samuel gregory alexander
patrick frank raymond jack dennis jerry tyler aaron jose adam nathan henry zachary douglas peter kyle noah
ethan jeremy walter christian keith roger terry austin sean gerald carl harold dylan arthur lawrence jordan
jesse bryan billy bruce gabriel joe logan alan juan albert willie elijah wayne randy vincent mason roy ralph
bobby russell bradley philip eugene luis carlos miguel diego wei hiroshi mohammed ahmed raj arjun olusegun
kwame liam lucas mateo oliver leo finn theo"""
FEMALE_NAMES = """mary patricia jennifer linda elizabeth barbara susan jessica sarah karen lisa nancy betty
sandra margaret ashley kimberly emily donna michelle carol amanda melissa deborah stephanie dorothy rebecca
sharon laura cynthia amy kathleen angela shirley brenda emma anna pamela nicole samantha katherine christine
helen debra rachel carolyn janet maria catherine heather diane olivia julie joyce victoria ruth virginia
lauren kelly christina joan evelyn judith andrea hannah megan cheryl jacqueline martha madison teresa gloria
sara janice ann kathryn abigail sophia frances jean alice judy isabella julia grace amber denise danielle
marilyn beverly charlotte natalie theresa diana brittany doris kayla alexis lori marie ava mia chloe zoe
lucia sofia priya aisha fatima mei yuki ngozi siobhan ingrid astrid"""
# Common nicknames (our own table: many are in the product's nickname list, some are not, as in life).
NICKNAMES = {
    "robert": ["bob", "rob", "bobby", "robbie"],
    "william": ["bill", "will", "billy", "liam"],
    "james": ["jim", "jimmy", "jamie"],
    "john": ["jack", "johnny"],
    "michael": ["mike", "mikey", "mick"],
    "richard": ["rick", "dick", "rich", "richie"],
    "thomas": ["tom", "tommy"],
    "joseph": ["joe", "joey"],
    "charles": ["charlie", "chuck"],
    "christopher": ["chris", "topher"],
    "daniel": ["dan", "danny"],
    "matthew": ["matt"],
    "anthony": ["tony"],
    "donald": ["don", "donny"],
    "steven": ["steve"],
    "stephen": ["steve"],
    "andrew": ["andy", "drew"],
    "joshua": ["josh"],
    "kenneth": ["ken", "kenny"],
    "edward": ["ed", "eddie", "ted"],
    "ronald": ["ron", "ronnie"],
    "timothy": ["tim", "timmy"],
    "jeffrey": ["jeff"],
    "nicholas": ["nick", "nicky"],
    "benjamin": ["ben", "benny"],
    "samuel": ["sam", "sammy"],
    "gregory": ["greg"],
    "alexander": ["alex", "sasha"],
    "patrick": ["pat", "paddy"],
    "jonathan": ["jon", "jonny"],
    "zachary": ["zach", "zack"],
    "nathan": ["nate"],
    "lawrence": ["larry"],
    "raymond": ["ray"],
    "gerald": ["jerry"],
    "walter": ["walt"],
    "eugene": ["gene"],
    "albert": ["al", "bert"],
    "vincent": ["vince", "vinny"],
    "philip": ["phil"],
    "douglas": ["doug"],
    "harold": ["harry", "hal"],
    "henry": ["hank", "harry"],
    "bradley": ["brad"],
    "elizabeth": ["liz", "beth", "betty", "lizzie"],
    "margaret": ["maggie", "peggy", "meg"],
    "patricia": ["pat", "patty", "trish"],
    "jennifer": ["jen", "jenny"],
    "katherine": ["kate", "katie", "kathy"],
    "catherine": ["cathy", "cat"],
    "kathleen": ["kathy", "kate"],
    "susan": ["sue", "susie"],
    "deborah": ["deb", "debbie"],
    "barbara": ["barb"],
    "dorothy": ["dot", "dottie"],
    "rebecca": ["becky", "becca"],
    "christina": ["tina", "chris"],
    "samantha": ["sam"],
    "victoria": ["vicky", "tori"],
    "abigail": ["abby"],
    "jessica": ["jess", "jessie"],
    "kimberly": ["kim"],
    "pamela": ["pam"],
    "cynthia": ["cindy"],
    "melissa": ["mel", "missy"],
    "stephanie": ["steph"],
    "amanda": ["mandy"],
    "judith": ["judy"],
    "theresa": ["tess", "terri"],
    "isabella": ["bella", "izzy"],
    "emily": ["em"],
    "alexis": ["lexi"],
    "natalie": ["nat"],
    "jacqueline": ["jackie"],
    "virginia": ["ginny"],
}
SURNAMES = """smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez gonzalez
wilson anderson thomas taylor moore jackson martin lee perez thompson white harris sanchez clark ramirez lewis
robinson walker young allen king wright scott torres nguyen hill flores green adams nelson baker hall rivera
campbell mitchell carter roberts gomez phillips evans turner diaz parker cruz edwards collins reyes stewart
morris morales murphy cook rogers gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim
cox ward richardson watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo
sanders patel myers long ross foster jimenez powell jenkins perry russell sullivan bell coleman butler
henderson barnes gonzales fisher vasquez simmons romero jordan patterson alexander hamilton graham reynolds
griffin wallace moreno west cole hayes bryant herrera gibson ellis tran medina aguilar stevens murray ford
castro marshall owens harrison fernandez mcdonald woods washington kennedy wells vargas henry chen freeman
webb tucker guzman burns crawford olson simpson porter hunter gordon mendez silva shaw snyder mason dixon
munoz hunt hicks holmes palmer wagner black robertson boyd rose stone salazar fox warren mills meyer rice
schmidt garza daniels ferguson nichols stephens soto weaver ryan gardner payne grant dunn kelley spencer
hawkins arnold pierce vazquez hansen peters santos hart bradley knight elliott cunningham duncan armstrong
hudson carroll lane riley andrews alvarado ray delgado berry perkins hoffman johnston matthews pena
richards willis carpenter lawrence sandoval guerrero george chapman rios estrada ortega watkins greene
nunez wheeler valdez harper burke larson santiago maldonado morrison franklin carlson austin dominguez
carr lawson jacobs obrien lynch singh vega bishop montgomery oliver jensen harvey williamson gilbert
dean sims espinoza howell li wong reid hanson le mccoy garrett burton fuller wang weber welch rojas lucas
marquez fields park yang little banks padilla day walsh bowman schultz luna fowler mejia davidson acosta
brewer may holland juarez newman pearson curtis cortez douglas schneider joseph barrett navarro figueroa
keller avila wade molina stanley hopkins campos barnett bates chambers caldwell beck lambert miranda byrd
craig ayala lowe frazier powers neal leonard gregory carrillo sutton fleming rhodes shelton schwartz norris
jennings watts duran walters cohen mcdaniel moran parks steele vaughn becker holt deleon barker terry hale
leon hail benson haynes horton miles lyons pham graves bush thornton wolfe warner cabrera mckinney mann
zimmerman dawson lara fletcher page mccarthy love robles cervantes solis erickson reeves chang klein
salinas fuentes baldwin daniel simon velasquez hardy higgins aguirre lin cummings chandler sharp barber
bowen ochoa dennis robbins liu ramsey francis griffith paul blair oconnor cardenas pacheco cross calderon
quinn moss swanson chan rivas khan rodgers serrano fitzgerald rosales stevenson christensen manning gill
curry mclaughlin harmon mcgee gross doyle garner newton burgess reese walton blake trujillo adkins brady
goodman roman webster goodwin fischer huang potter delacruz montoya todd wu hines mullins castaneda malone
cannon tate mack sherman hubbard hodges zhang guerra wolf valencia saunders franco rowe gallagher farmer
hammond hampton townsend ingram wise gallegos clarke barton schroeder maxwell waters logan camacho
strickland norman person colon parsons frank harrington glover osborne buchanan casey floyd patton ibarra
ball tyler suarez bowers orozco salas cobb gibbs andrade bauer conner moody escobar mcguire lloyd mueller
hartman french kramer mcbride pope lindsey velazquez norton mccormick sparks flynn yates hogan marsh
macias villanueva zamora pratt stokes owen ballard lang brock villarreal charles drake barrera cain patrick
pineda burnett mercado santana shepherd bautista ali shaffer lamb trevino mckenzie hess beil olsen cochran
morton nash wilkins petersen briggs shah roth nicholson holloway lozano flowers rangel hoover short arias
mora valenzuela bryan meyers weiss underwood bass greer summers houston carson morrow clayton whitaker
decker yoder collier zuniga carey wilcox melendez poole roberson larsen conley davenport copeland massey
lam huff rocha cameron jefferson hood monroe anthony pittman huynh randall singleton kirk combs mathis
christian skinner bradford richard galvan wall boone kirby wilkinson bridges bruce atkinson velez meza
roy vincent york hodge villa abbott allison tapia gates chase sosa sweeney farrell wyatt dalton horn
barron phelps yu dickerson heath foley atkins mathews bonilla acevedo benitez zavala hensley glenn cisneros
harrell shields rubio huffman choi boyer garrison arroyo bond kane hancock callahan dillon cline wiggins
grimes arellano melton oneill savage ho beltran pitts parrish ponce rich booth koch golden ware brennan
mcdowell marks cantu humphrey baxter sawyer clay tanner hutchinson kaur berg wiley gilmore russo villegas
hobbs keith wilkerson ahmed beard mcclain montes mata rosario vang walter henson oneal mosley mcclure beasley
stephenson snow huerta preston vance barry johns eaton blackwell dyer prince macdonald solomon guevara
stafford english hurst woodard cortes shannon kemp nolan mccullough merritt murillo moon salgado strong
kline cordova barajas roach rosas winters jacobson lester knox bullock kerr leach meadows orr davila whitehead
pruitt kent conway mckee barr david dejesus marin berger mcintyre blankenship gaines palacios cuevas
bartlett durham dorsey mccall odonnell stein browning stout lowery sloan mclean hendricks calhoun sexton
chung gentry hull duarte ellison nielsen gillespie buck middleton sellers leblanc esparza hardin bradshaw
mcintosh howe livingston frost glass morse knapp herman stark bravo noble spears weeks corona frederick
buckley mcfarland hebert enriquez hickman quintero randolph schaefer walls trejo house reilly pennington
michael conrad giles benjamin crosby fitzpatrick donovan mays mahoney valentine raymond medrano hahn mcmillan
small bentley felix peck lucero boyle hanna pace rush hurley harding mcconnell bernal nava ayers everett
ventura avery pugh mayer bender shepard mcmahon landry case sampson moses magana blackburn dunlap gould
duffy vaughan herring mckay espinosa rivers farley bernard ashley friedman potts truong costa correa
blevins nixon clements fry delarosa best benton lugo portillo dougherty crane haley phan villalobos blanchard
horne finley quintana lynn esquivel bean dodson mullen xiong hayden cano levy huber richmond moyer lim
frye sheppard mccarty avalos booker waller parra woodward jaramillo krueger rasmussen brandt peralta
donaldson stuart faulkner maynard galindo coffey estes sanford burch maddox vo oconnell vu andersen spence
mcpherson church schmitt stanton leal cherry compton dudley sierra pollard alfaro hester proctor lu hinton
novak good madden mccann terrell jarvis dickson reyna cantrell mayo branch hendrix rollins rowland whitney
duke odom daugherty travis tang archer"""
# Surnames outside the common list are made of syllables: tens of thousands of rarer names, as in life.
TAIL_HEADS = _words("""ab al an ar ash bal bar bel ber bla bol bra bre bri bro bur cal car cas chal chan cor cran dal
dan dar del dor dra dun ed el em en er fal far fel fen fin for gal gar gil gol gra gre gri ham han har hel
hen her hol hor hul jan kal kar kel ken kin kor lan lar len lin lor mal man mar mel mer mil mor nel nor ol
or os pal par pel pen per quin ral ran rav red ren rid rom ros sal san sel sen sil sol stan stel sul tal tan
tel ten thor tor tru val van vel ver wal war wel wen wil win wor yar zel""")
TAIL_MIDDLES = ["", "", "", "a", "e", "i", "o", "er", "en", "in", "el", "and", "ing", "is", "ow", "ett"]
TAIL_TAILS = _words("""berg bury by dale den dorf field ford gard gate ham holm hurst ich ik ing ington ke land ley lin
ling lo low man mann mer more nell ner ney ov ovich quist rick ridge sby sen ski sky son stead ston strom ton
vik wald way well wick win witz wood worth""")
TAIL_SURNAME_SHARE = 0.45  # people whose surname is outside the common list

STREET_NAMES = _words("""main oak maple cedar pine elm washington lake hill park high church mill river spring north
south west east walnut chestnut willow jefferson lincoln madison franklin jackson adams center highland
sunset forest meadow ridge valley cherry birch ash poplar hickory sycamore magnolia dogwood laurel holly
orchard garden prospect pleasant union liberty market water bridge school academy college grove lakeview
riverside hillside fairview greenwood woodland brookside clinton grant sherman monroe harrison cleveland
wilson taylor pierce hamilton king queen prince windsor victoria albany boston dover salem canterbury oxford
cambridge chester essex kent sussex york lancaster durham devon somerset hawthorne juniper aspen spruce
cypress redwood sequoia mulberry peach apple plum pearl ruby jade amber coral harbor bay ocean shore beach
cliff canyon mesa summit mountain rock stone granite marble iron copper silver gold eagle hawk falcon robin
cardinal sparrow lark heron swan fox deer elk bear wolf""")
STREET_TYPES = [
    ("Street", "St"),
    ("Avenue", "Ave"),
    ("Road", "Rd"),
    ("Lane", "Ln"),
    ("Drive", "Dr"),
    ("Court", "Ct"),
    ("Place", "Pl"),
    ("Boulevard", "Blvd"),
    ("Way", "Way"),
    ("Terrace", "Ter"),
]
# (city, state, ZIP prefix, area code), the larger first: a city's share of the people falls with its rank.
CITIES = [
    ("New York", "NY", "100", "212"),
    ("Los Angeles", "CA", "900", "213"),
    ("Chicago", "IL", "606", "312"),
    ("Houston", "TX", "770", "713"),
    ("Phoenix", "AZ", "850", "602"),
    ("Philadelphia", "PA", "191", "215"),
    ("San Antonio", "TX", "782", "210"),
    ("San Diego", "CA", "921", "619"),
    ("Dallas", "TX", "752", "214"),
    ("San Jose", "CA", "951", "408"),
    ("Austin", "TX", "787", "512"),
    ("Jacksonville", "FL", "322", "904"),
    ("Columbus", "OH", "432", "614"),
    ("Charlotte", "NC", "282", "704"),
    ("Indianapolis", "IN", "462", "317"),
    ("San Francisco", "CA", "941", "415"),
    ("Seattle", "WA", "981", "206"),
    ("Denver", "CO", "802", "303"),
    ("Boston", "MA", "021", "617"),
    ("Nashville", "TN", "372", "615"),
    ("Detroit", "MI", "482", "313"),
    ("Portland", "OR", "972", "503"),
    ("Las Vegas", "NV", "891", "702"),
    ("Memphis", "TN", "381", "901"),
    ("Louisville", "KY", "402", "502"),
    ("Baltimore", "MD", "212", "410"),
    ("Milwaukee", "WI", "532", "414"),
    ("Albuquerque", "NM", "871", "505"),
    ("Tucson", "AZ", "857", "520"),
    ("Fresno", "CA", "937", "559"),
    ("Sacramento", "CA", "958", "916"),
    ("Kansas City", "MO", "641", "816"),
    ("Atlanta", "GA", "303", "404"),
    ("Miami", "FL", "331", "305"),
    ("Raleigh", "NC", "276", "919"),
    ("Omaha", "NE", "681", "402"),
    ("Minneapolis", "MN", "554", "612"),
    ("Tulsa", "OK", "741", "918"),
    ("Cleveland", "OH", "441", "216"),
    ("New Orleans", "LA", "701", "504"),
    ("Tampa", "FL", "336", "813"),
    ("Pittsburgh", "PA", "152", "412"),
    ("Cincinnati", "OH", "452", "513"),
    ("St. Louis", "MO", "631", "314"),
    ("Newark", "NJ", "071", "973"),
    ("Buffalo", "NY", "142", "716"),
    ("Madison", "WI", "537", "608"),
    ("Providence", "RI", "029", "401"),
    ("Hartford", "CT", "061", "860"),
    ("Springfield", "MA", "011", "413"),
    ("Springfield", "IL", "627", "217"),
    ("Salt Lake City", "UT", "841", "801"),
    ("Richmond", "VA", "232", "804"),
    ("Burlington", "VT", "054", "802"),
    ("Portland", "ME", "041", "207"),
    ("Boise", "ID", "837", "208"),
    ("Anchorage", "AK", "995", "907"),
    ("Honolulu", "HI", "968", "808"),
    ("Des Moines", "IA", "503", "515"),
    ("Little Rock", "AR", "722", "501"),
]
ZIPS_PER_CITY = 40  # ZIP codes of a city (the biggest cities have most people per ZIP code)
STREETS_PER_ZIP = 25
PHONE_SPREAD = 2_654_435_761  # odd and prime to 5: a bijection on the number spaces used below
MOBILE_AREAS = [
    "201", "202", "203", "205", "206", "207", "208", "209", "210", "212", "213", "214", "215", "216", "217",
    "218", "219", "224", "225", "228", "229", "231", "234", "239", "240", "248", "251", "252", "253", "254",
    "256", "260", "262", "267", "269", "270", "272", "276", "281", "301",
]  # fmt: skip
EMAIL_DOMAINS = [
    ("gmail.com", 0.38),
    ("yahoo.com", 0.13),
    ("hotmail.com", 0.09),
    ("outlook.com", 0.08),
    ("icloud.com", 0.07),
    ("aol.com", 0.04),
    ("comcast.net", 0.03),
    ("proton.me", 0.02),
    ("att.net", 0.02),
    ("msn.com", 0.02),
    ("live.com", 0.02),
]
WORK_EMAIL_SHARE = 0.08
COMPANIES = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
]
EMAIL_DOMAIN_TYPOS = {
    "gmail.com": ["gmial.com", "gmai.com", "gnail.com"],
    "yahoo.com": ["yaho.com", "yahooo.com"],
    "hotmail.com": ["hotmial.com", "hotmal.com"],
    "outlook.com": ["outlok.com"],
    "icloud.com": ["icoud.com"],
}
KEYBOARD = {
    "a": "qwsz", "b": "vghn", "c": "xdfv", "d": "serfcx", "e": "wsdr", "f": "drtgvc", "g": "ftyhbv",
    "h": "gyujnb", "i": "ujko", "j": "huikmn", "k": "jiolm", "l": "kop", "m": "njk", "n": "bhjm", "o": "iklp",
    "p": "ol", "q": "wa", "r": "edft", "s": "awedxz", "t": "rfgy", "u": "yhji", "v": "cfgb", "w": "qase",
    "x": "zsdc", "y": "tghu", "z": "asx",
}  # fmt: skip

# --- Rates of corruption (per record unless said otherwise) -------------------------------------------------

HOUSEHOLD_SIZES = (0.82, 0.13, 0.04, 0.01)  # customers at one address: 1, 2, 3, 4
PARTNER_SAME_SURNAME = 0.70
TWINS = 0.03  # a child of a household with children has a twin among the customers
JUNIOR = 0.05  # a son named after his father (John Smith Jr. at his parents' address)
HAS_MOBILE = 0.88
HOUSEHOLD_LANDLINE = 0.35  # of households; their records sometimes give it instead of the mobile
LANDLINE_ON_RECORD = 0.30
FAMILY_EMAIL = 0.04  # of households with two or more customers: an address the family shares
FAMILY_EMAIL_ON_RECORD = 0.5
MOVED = 0.12  # of people: a previous address, which their older records still carry
CHANGED_EMAIL = 0.10  # of people: a previous email, which their older records still carry
MAIDEN_NAME = 0.03  # of people: a surname changed (marriage); older records carry the old one
SOURCES_PER_PERSON = (0.38, 0.34, 0.19, 0.09)  # 1, 2, 3, 4 sources
DUPLICATE_IN_SOURCE = 0.05  # a second record of the person in one source (the duplicate every CRM has)
FIRST_NAME_TYPO = 0.04
LAST_NAME_TYPO = 0.04
NICKNAME = 0.12  # of the records of people whose name has nicknames
INITIAL = 0.03
MIDDLE_INITIAL = 0.15  # of the records of people with a middle name (a third of them)
SWAPPED_NAMES = 0.02
DAY_MONTH_SWAP = 0.04  # of the records with a birth date whose day is 12 or less
BIRTH_DATE_TYPO = 0.02
EMAIL_TYPO = 0.01
PHONE_TYPO = 0.01
ADDRESS_TYPO = 0.03
ZIP_VARIANT = 0.04  # ZIP+4, or a leading zero lost in a spreadsheet
CASE_CHANGE = 0.08  # names written in capitals or lower case
CRM_REFERENCE = 0.25  # ERP records that carry the person's CRM id
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# Field coverage per kind of source: the share of its records that hold each field (when the person has it).
COVERAGE = {
    "crm": {"first_name": 0.98, "last_name": 0.99, "email": 0.92, "phone": 0.75, "address_line1": 0.88,
            "postcode": 0.9, "birth_date": 0.55},
    "erp": {"first_name": 0.95, "last_name": 0.97, "email": 0.60, "phone": 0.55, "address_line1": 0.96,
            "postcode": 0.96, "birth_date": 0.0},
    "web": {"first_name": 0.55, "last_name": 0.35, "email": 1.0, "phone": 0.25, "address_line1": 0.0,
            "postcode": 0.35, "birth_date": 0.15},
    "support": {"first_name": 0.92, "last_name": 0.90, "email": 0.88, "phone": 0.60, "address_line1": 0.0,
                "postcode": 0.0, "birth_date": 0.0},
    "survey": {"first_name": 0.80, "last_name": 0.80, "email": 0.75, "phone": 0.20, "address_line1": 0.0,
               "postcode": 0.60, "birth_date": 0.70},
    "other": {"first_name": 0.98, "last_name": 0.98, "email": 0.90, "phone": 0.75, "address_line1": 0.88,
              "postcode": 0.9, "birth_date": 0.55},
}  # fmt: skip

CORRUPTIONS = (
    "first_name_typo",
    "last_name_typo",
    "nickname",
    "initial",
    "middle_initial",
    "swapped_names",
    "maiden_name",
    "moved_address",
    "address_typo",
    "address_abbreviated",
    "zip_variant",
    "changed_email",
    "email_typo",
    "family_email",
    "home_phone",
    "phone_typo",
    "phone_formatted",
    "birth_date_day_month_swap",
    "birth_date_typo",
    "case_change",
)
FIELDS = ("first_name", "last_name", "birth_date", "email", "phone", "address_line1", "postcode")


# --- The population -----------------------------------------------------------------------------------------


def _zipf(count: int, exponent: float = 1.0) -> list[float]:
    weights = [1.0 / (rank**exponent) for rank in range(1, count + 1)]
    total = sum(weights)
    acc, cumulative = 0.0, []
    for weight in weights:
        acc += weight / total
        cumulative.append(acc)
    return cumulative


@dataclass(frozen=True)
class Address:
    house: str
    street: str  # base name, lower case
    street_type: int  # index into STREET_TYPES
    unit: str
    city: str
    state: str
    zip: str

    def line(self, abbreviated: bool) -> str:
        kind = STREET_TYPES[self.street_type][1 if abbreviated else 0]
        line = f"{self.house} {self.street.title()} {kind}"
        return f"{line} Apt {self.unit}" if self.unit else line


@dataclass
class Person:
    """The truth about one person: what every record of theirs is a (corrupted) view of."""

    id: int
    household: int
    gender: str  # M or F
    first: str  # lower case
    middle: str  # an initial, or ""
    last: str  # lower case
    maiden: str  # a previous surname, or ""
    birth: date
    email: str
    old_email: str
    family_email: str
    mobile: str  # 10 digits, or ""
    landline: str  # the household's, or ""
    address: Address
    old_address: Address | None
    company: str


@dataclass(frozen=True)
class _Home:
    household: int
    address: Address
    landline: str
    family_email: str


class _Seen:
    """A Bloom filter of the email addresses handed out (fixed memory at any size): no false negatives, so
    an address it has not seen is new; a false positive only adds a number to an address."""

    BITS = 1 << 28

    def __init__(self) -> None:
        self.bits = bytearray(self.BITS // 8)

    def _positions(self, value: str) -> tuple[int, int]:
        digest = int.from_bytes(hashlib.blake2b(value.encode(), digest_size=8).digest(), "little")
        return digest % self.BITS, (digest >> 32) % self.BITS

    def add(self, value: str) -> bool:
        """Add ``value``; whether it may have been there already."""
        positions = self._positions(value)
        present = all(self.bits[p >> 3] & (1 << (p & 7)) for p in positions)
        for p in positions:
            self.bits[p >> 3] |= 1 << (p & 7)
        return present


class Population:
    """People in households, one household at a time (``households``), deterministic for a seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"people:{seed}")
        self.male = _words(MALE_NAMES)
        self.female = _words(FEMALE_NAMES)
        self.male_cum, self.female_cum = _zipf(len(self.male)), _zipf(len(self.female))
        self.surnames = _words(SURNAMES)
        self.surname_cum = _zipf(len(self.surnames), 0.9)
        self.city_cum = _zipf(len(CITIES), 0.8)
        self.emails = _Seen()
        self.next_person = 0
        self.next_household = 0
        self.phone_offset = random.Random(f"phones:{seed}").randrange(1_000_000)
        geo = random.Random(f"geography:{seed}")
        self.zips = []
        for city, state, prefix, area in CITIES:
            codes = sorted(geo.sample(range(100), ZIPS_PER_CITY))
            self.zips.append(
                [
                    (f"{prefix}{code:02d}", geo.sample(STREET_NAMES, STREETS_PER_ZIP), city, state, area)
                    for code in codes
                ]
            )

    # names and places

    def _pick(self, names: list[str], cumulative: list[float]) -> str:
        return names[min(_bisect(cumulative, self.rng.random()), len(names) - 1)]

    def first_name(self, gender: str) -> str:
        if gender == "M":
            return self._pick(self.male, self.male_cum)
        return self._pick(self.female, self.female_cum)

    def surname(self) -> str:
        rng = self.rng
        if rng.random() < TAIL_SURNAME_SHARE:
            return rng.choice(TAIL_HEADS) + rng.choice(TAIL_MIDDLES) + rng.choice(TAIL_TAILS)
        return self._pick(self.surnames, self.surname_cum)

    def address(self) -> tuple[Address, str]:
        """A random address and the area code of its city."""
        rng = self.rng
        city_zips = self.zips[min(_bisect(self.city_cum, rng.random()), len(CITIES) - 1)]
        code, streets, city, state, area = city_zips[int(len(city_zips) * rng.random() ** 1.5)]
        house = str(int(10 ** rng.uniform(0, 4)))  # small house numbers are commoner
        unit = str(rng.randint(1, 30)) + rng.choice(["", "", "A", "B"]) if rng.random() < 0.15 else ""
        street_type = rng.choices(range(len(STREET_TYPES)), weights=[30, 20, 15, 10, 10, 5, 3, 3, 2, 2])[0]
        return Address(house, rng.choice(streets), street_type, unit, city, state, code), area

    def email(self, first: str, last: str, birth: date) -> str:
        rng = self.rng
        if rng.random() < WORK_EMAIL_SHARE:
            domain = rng.choice(COMPANIES) + ".com"
        else:
            domain = rng.choices([d for d, _ in EMAIL_DOMAINS], weights=[w for _, w in EMAIL_DOMAINS])[0]
        last = last.replace(" ", "")
        local = rng.choice(
            [
                f"{first}.{last}",
                f"{first[0]}{last}",
                f"{first}{last}",
                f"{first}_{last}",
                f"{last}.{first}",
                f"{first}{birth.year % 100:02d}",
                f"{first[0]}.{last}{birth.year}",
            ]
        )
        candidate = f"{local}@{domain}"
        while self.emails.add(candidate):  # taken: add a number, as the mail provider would have
            candidate = f"{local}{rng.randint(1, 9999)}@{domain}"
        return candidate

    # Phone numbers are unique and spread thinly over the number space, as a customer base is over a
    # country's numbers (a sequential assignment would make strangers' numbers one digit apart).

    def _mobile(self, person_id: int) -> str:
        spread = (person_id * PHONE_SPREAD + self.phone_offset) % (len(MOBILE_AREAS) * 4_000_000)
        area, rest = MOBILE_AREAS[spread % len(MOBILE_AREAS)], spread // len(MOBILE_AREAS)
        return f"{area}{200 + rest // 10000}{rest % 10000:04d}"  # exchanges 200-599: mobiles

    def _landline(self, household: int, area: str) -> str:
        spread = (household * PHONE_SPREAD + self.phone_offset) % 4_000_000
        return f"{area}{600 + spread // 10000}{spread % 10000:04d}"  # exchanges 600-999: landlines

    # people

    def _person(self, home: _Home, gender: str, first: str, last: str, birth: date) -> Person:
        rng = self.rng
        pid = self.next_person
        self.next_person += 1
        maiden = self.surname() if gender == "F" and rng.random() < MAIDEN_NAME * 2 else ""
        old_address = self.address()[0] if rng.random() < MOVED else None
        email = self.email(first, last, birth)
        old_email = self.email(first, maiden or last, birth) if rng.random() < CHANGED_EMAIL else ""
        return Person(
            id=pid,
            household=home.household,
            gender=gender,
            first=first,
            middle=rng.choice("abcdefghjklmnprstw") if rng.random() < 0.3 else "",
            last=last,
            maiden=maiden,
            birth=birth,
            email=email,
            old_email=old_email,
            family_email=home.family_email,
            mobile=self._mobile(pid) if rng.random() < HAS_MOBILE else "",
            landline=home.landline,
            address=home.address,
            old_address=old_address,
            company=rng.choice(COMPANIES) if rng.random() < 0.3 else "",
        )

    def _birth(self, low: int, high: int) -> date:
        return EPOCH.date() - timedelta(days=self.rng.randint(low * 365, high * 365))

    def household(self) -> list[Person]:
        """The customers living at one address: one to four people, partners and grown-up children."""
        rng = self.rng
        hid = self.next_household
        self.next_household += 1
        size = rng.choices((1, 2, 3, 4), weights=HOUSEHOLD_SIZES)[0]
        address, area = self.address()
        landline = self._landline(hid, area) if rng.random() < HOUSEHOLD_LANDLINE else ""
        surname = self.surname()
        family_email = ""
        if size > 1 and rng.random() < FAMILY_EMAIL:
            family_email = self.email("the", surname + "s", date(2000, 1, 1))
        gender = rng.choice("MF")
        # Parents with grown-up children are older.
        head_birth = self._birth(45, 85) if size >= 3 else self._birth(18, 85)
        home = _Home(hid, address, landline, family_email)
        members = [self._person(home, gender, self.first_name(gender), surname, head_birth)]
        if size >= 2:
            partner_gender = "F" if gender == "M" and rng.random() < 0.95 else rng.choice("MF")
            partner_birth = head_birth + timedelta(days=rng.randint(-8 * 365, 8 * 365))
            partner_birth = min(partner_birth, EPOCH.date() - timedelta(days=18 * 365))
            partner_last = surname if rng.random() < PARTNER_SAME_SURNAME else self.surname()
            partner_first = self.first_name(partner_gender)
            members.append(self._person(home, partner_gender, partner_first, partner_last, partner_birth))
        father = next((m for m in members if m.gender == "M"), None)
        previous_child: Person | None = None
        for _ in range(size - 2):
            child_gender = rng.choice("MF")
            if previous_child is not None and rng.random() < TWINS:
                birth, child_gender = previous_child.birth, rng.choice("MF")
            else:
                birth = head_birth + timedelta(days=rng.randint(20 * 365, 32 * 365))
                birth = min(birth, EPOCH.date() - timedelta(days=18 * 365))
            first = self.first_name(child_gender)
            if child_gender == "M" and father is not None and rng.random() < JUNIOR:
                first = father.first
            child = self._person(home, child_gender, first, surname, birth)
            if previous_child is not None and child.birth == previous_child.birth:
                while child.first == previous_child.first:  # twins have different names
                    child.first = self.first_name(child_gender)
            members.append(child)
            previous_child = child
        return members


def _bisect(cumulative: list[float], x: float) -> int:
    lo, hi = 0, len(cumulative)
    while lo < hi:
        mid = (lo + hi) // 2
        if cumulative[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


# --- Records: what a source system holds about a person ------------------------------------------------------


@dataclass
class GeneratedRecord:
    """One record as a source sends it, with the truth: its person and the corruptions it carries."""

    source: str
    payload: dict
    person: Person
    corruptions: tuple[str, ...]


def _typo(rng: random.Random, word: str) -> str:
    """One keyboard slip: a neighbouring key, a dropped, doubled or swapped letter (rarely the first)."""
    if len(word) < 3:
        return word
    start = 0 if rng.random() < 0.1 else 1
    position = rng.randrange(start, len(word))
    letter = word[position]
    kind = rng.randrange(4)
    if kind == 0 and letter in KEYBOARD:
        out = word[:position] + rng.choice(KEYBOARD[letter]) + word[position + 1 :]
    elif kind == 1:
        out = word[:position] + word[position + 1 :]
    elif kind == 2:
        out = word[:position] + letter + word[position:]
    else:
        position = min(position, len(word) - 2)
        out = word[:position] + word[position + 1] + word[position] + word[position + 2 :]
    return out if out != word else word[:-1]


def _email_typo(rng: random.Random, email: str) -> str:
    """A misspelt provider, or a slip on a letter of the local part; still a valid address (a record with an
    invalid one would be quarantined at intake, which is another benchmark)."""
    local, _, domain = email.partition("@")
    if domain in EMAIL_DOMAIN_TYPOS and rng.random() < 0.5:
        return f"{local}@{rng.choice(EMAIL_DOMAIN_TYPOS[domain])}"
    letters = [i for i, ch in enumerate(local) if ch.isalpha()]
    position = rng.choice(letters)
    letter = local[position]
    roll = rng.random()
    if roll < 0.5 and letter in KEYBOARD:
        changed = local[:position] + rng.choice(KEYBOARD[letter]) + local[position + 1 :]
    else:
        changed = local[:position] + local[position + 1 :]  # a dropped letter
    if roll >= 0.75 or ".." in changed or changed.startswith(".") or changed.endswith(".") or not changed:
        changed = local[:position] + letter + local[position:]  # a doubled one
    return f"{changed}@{domain}"


def _name_case(rng: random.Random, name: str, kinds: list[str]) -> str:
    if rng.random() < CASE_CHANGE:
        kinds.append("case_change")
        return name.upper() if rng.random() < 0.6 else name.lower()
    return " ".join(part.capitalize() for part in name.split(" "))


def _phone_text(rng: random.Random, digits: str) -> str:
    a, e, line = digits[:3], digits[3:6], digits[6:]
    return rng.choice(
        [
            f"({a}) {e}-{line}",
            f"{a}-{e}-{line}",
            f"{a}.{e}.{line}",
            f"{a}{e}{line}",
            f"1-{a}-{e}-{line}",
            f"+1 {a} {e} {line}",
            f"+1{digits}",
            f"+1 ({a}) {e}-{line}",
        ]
    )


class RecordMaker:
    """The records of one person in the sources they are known to, with each source's field coverage."""

    def __init__(self, rng: random.Random, specs: list[SourceSpec]) -> None:
        self.rng = rng
        self.specs = specs
        self.reach = [SOURCE_REACH.get(spec.kind, 0.15) for spec in specs]
        self.counters = Counter()

    def _external_id(self, spec: SourceSpec) -> str:
        self.counters[spec.slug] += 1
        return f"{external_id_prefix(spec.slug)}{self.counters[spec.slug]:08d}"

    def records(self, person: Person) -> list[GeneratedRecord]:
        rng = self.rng
        count = min(rng.choices((1, 2, 3, 4), weights=SOURCES_PER_PERSON)[0], len(self.specs))
        chosen: list[SourceSpec] = []
        pool, weights = list(self.specs), list(self.reach)
        for _ in range(count):
            index = rng.choices(range(len(pool)), weights=weights)[0]
            chosen.append(pool.pop(index))
            weights.pop(index)
        if rng.random() < DUPLICATE_IN_SOURCE:
            chosen.append(rng.choice(chosen))
        ids = [self._external_id(spec) for spec in chosen]
        crm_id = next((eid for spec, eid in zip(chosen, ids, strict=True) if spec.slug == "crm"), None)
        # The older records carry what changed since (a previous address, email or surname).
        ages = sorted((rng.random() for _ in chosen), reverse=True)
        out = []
        for spec, external_id, age in zip(chosen, ids, ages, strict=True):
            older = age > 0.6 and len(chosen) > 1
            out.append(self.record(spec, external_id, person, older=older, age=age, crm_id=crm_id))
        return out

    def record(
        self,
        spec: SourceSpec,
        external_id: str,
        person: Person,
        *,
        older: bool,
        age: float,
        crm_id: str | None,
    ) -> GeneratedRecord:
        rng = self.rng
        kinds: list[str] = []
        kind = spec.kind
        coverage = COVERAGE.get(kind, COVERAGE["other"])
        has = {name: rng.random() < share for name, share in coverage.items()}

        # Names
        first, last = person.first, person.last
        if older and person.maiden:
            last = person.maiden
            kinds.append("maiden_name")
        roll = rng.random()
        if person.first in NICKNAMES and roll < NICKNAME:
            first = rng.choice(NICKNAMES[person.first])
            kinds.append("nickname")
        elif rng.random() < INITIAL and has["first_name"] and kind != "web":
            first = first[0]
            kinds.append("initial")
        if len(first) > 1 and rng.random() < FIRST_NAME_TYPO:
            first = _typo(rng, first)
            kinds.append("first_name_typo")
        if rng.random() < LAST_NAME_TYPO:
            last = _typo(rng, last)
            kinds.append("last_name_typo")
        if len(first) == 1:
            first_name = first.upper() + rng.choice(["", "."])
        else:
            first_name = _name_case(rng, first, kinds)
        if person.middle and rng.random() < MIDDLE_INITIAL:
            first_name = f"{first_name} {person.middle.upper()}."
            kinds.append("middle_initial")
        last_name = _name_case(rng, last, kinds)
        if not has["first_name"]:
            first_name = None
            kinds = [
                k for k in kinds if k not in {"nickname", "initial", "first_name_typo", "middle_initial"}
            ]
        if not has["last_name"]:
            last_name = None
            kinds = [k for k in kinds if k not in {"maiden_name", "last_name_typo"}]
        if first_name and last_name and rng.random() < SWAPPED_NAMES:
            first_name, last_name = last_name, first_name
            kinds.append("swapped_names")

        # Email
        email = None
        if has["email"]:
            email = person.email
            if older and person.old_email:
                email = person.old_email
                kinds.append("changed_email")
            elif person.family_email and rng.random() < FAMILY_EMAIL_ON_RECORD:
                email = person.family_email
                kinds.append("family_email")
            if rng.random() < EMAIL_TYPO:
                email = _email_typo(rng, email)
                kinds.append("email_typo")
            if rng.random() < 0.1:
                email = email.capitalize() if rng.random() < 0.5 else email.upper()

        # Phone: web forms ask for a mobile; the other systems hold whatever number the customer gave.
        phone = None
        landline = bool(person.landline) and kind != "web"
        landline = landline and (not person.mobile or rng.random() < LANDLINE_ON_RECORD)
        number = person.landline if landline else person.mobile
        if has["phone"] and number:
            if landline:
                kinds.append("home_phone")
            if rng.random() < PHONE_TYPO:
                position = rng.randrange(3, 10)
                digit = str((int(number[position]) + rng.randint(1, 9)) % 10)
                number = number[:position] + digit + number[position + 1 :]
                kinds.append("phone_typo")
            phone = _phone_text(rng, number)
            if phone != f"+1{number}":
                kinds.append("phone_formatted")

        # Address
        address = person.address
        if older and person.old_address is not None:
            address = person.old_address
        line = zip_code = city = state = None
        if has["address_line1"] or has["postcode"]:
            if address is not person.address:
                kinds.append("moved_address")
            zip_code = address.zip
            if rng.random() < ZIP_VARIANT:
                if zip_code.startswith("0"):
                    zip_code = zip_code.lstrip("0")
                else:
                    zip_code = f"{zip_code}-{rng.randint(1000, 9999)}"
                kinds.append("zip_variant")
        if has["address_line1"]:
            abbreviated = rng.random() < 0.55
            if abbreviated:
                kinds.append("address_abbreviated")
            line = address.line(abbreviated)
            if rng.random() < ADDRESS_TYPO:
                house, _, rest = line.partition(" ")
                if rng.random() < 0.4:
                    house = _typo(rng, house) if len(house) >= 3 else house + str(rng.randint(0, 9))
                else:
                    words = rest.split(" ")
                    words[0] = _typo(rng, words[0])
                    rest = " ".join(words)
                line = f"{house} {rest}"
                kinds.append("address_typo")
            if rng.random() < CASE_CHANGE:
                line = line.upper()
            city, state = address.city, address.state

        # Birth date
        birth = None
        if has["birth_date"]:
            value = person.birth
            if value.day <= 12 and value.day != value.month and rng.random() < DAY_MONTH_SWAP:
                value = value.replace(month=value.day, day=value.month)
                kinds.append("birth_date_day_month_swap")
            elif rng.random() < BIRTH_DATE_TYPO:
                roll = rng.random()
                if roll < 0.4:
                    value = value.replace(year=value.year + rng.choice([-1, 1]), day=min(value.day, 28))
                elif roll < 0.8:
                    value = value.replace(day=1 + (value.day + rng.randint(0, 26)) % 28)
                else:
                    month = 1 + (value.month + rng.randint(0, 10)) % 12
                    value = value.replace(month=month, day=min(value.day, 28))
                if value != person.birth:
                    kinds.append("birth_date_typo")
            birth = value.isoformat()

        updated_at = EPOCH - timedelta(days=age * 1500 + rng.random())
        attributes = self._attributes(
            spec, person, first_name, last_name, email, phone, line, city, state, zip_code, birth
        )
        payload: dict = {
            "external_id": external_id,
            "updated_at": updated_at.isoformat(),
            "attributes": attributes,
        }
        if kind == "erp" and crm_id and rng.random() < CRM_REFERENCE:
            payload["identifiers"] = {"crm": crm_id}
        return GeneratedRecord(spec.slug, payload, person, tuple(dict.fromkeys(kinds)))

    def _attributes(
        self, spec, person, first_name, last_name, email, phone, line, city, state, zip_code, birth
    ) -> dict:
        rng = self.rng
        kind = spec.kind
        if kind == "erp":
            attributes = {
                "FirstName": first_name,
                "LastName": last_name,
                "EMail": email,
                "Phone": phone,
                "Street": line,
                "City": city,
                "Zip": zip_code,
                "Country": "US" if line else None,
                "customer_group": rng.choice(["retail", "wholesale", "staff"]),
            }
        elif kind == "support" and first_name and last_name and rng.random() < 0.6:
            attributes = {"full_name": f"{first_name} {last_name}", "email": email, "phone": phone}
            attributes["tickets"] = rng.randint(1, 12)
        else:
            attributes = {
                "first_name": first_name,
                "last_name": last_name,
                "email": email,
                "phone": phone,
                "birth_date": birth,
                "address_line1": line,
                "city": city,
                "region": state,
                "postcode": zip_code,
                "country": "US" if line else None,
            }
            if kind in {"crm", "other", "survey"} and rng.random() < 0.35:
                attributes["gender"] = person.gender
            if kind in {"crm", "other"} and person.company:
                attributes["company"] = person.company.title()
            if kind == "web":
                attributes["newsletter"] = rng.random() < 0.4
        return {name: value for name, value in attributes.items() if value is not None}


# --- The stream ---------------------------------------------------------------------------------------------


@dataclass
class GenerationStats:
    records: int = 0
    people: int = 0
    households: int = 0
    people_in_shared_households: int = 0
    per_source: Counter = field(default_factory=Counter)
    corruptions: Counter = field(default_factory=Counter)
    missing: Counter = field(default_factory=Counter)  # records without a value for each field in FIELDS

    def as_dict(self) -> dict:
        return {
            "records": self.records,
            "people": self.people,
            "households": self.households,
            "people_in_shared_households": self.people_in_shared_households,
            "per_source": dict(self.per_source),
            "corruptions": {kind: self.corruptions[kind] for kind in CORRUPTIONS},
            "missing": {name: self.missing[name] for name in FIELDS},
        }


def _present_fields(attributes: dict, mapping: dict) -> set[str]:
    names = {mapping.get(name, name) for name in attributes}
    if "full_name" in names:
        names |= {"first_name", "last_name"}
    return names


def generate(
    *, records: int, sources: int = 4, seed: int = 0, window: int = 5000, stats: GenerationStats | None = None
) -> Iterator[GeneratedRecord]:
    """``records`` records of people over ``sources`` sources, in sending order, deterministic for a seed.

    People are made household by household; their records go to the sources they are known to, each source
    keeping a shuffle buffer of ``window`` records (so one person's records do not arrive side by side, and
    memory stays bounded whatever the size). Pass ``stats`` to have it filled as records are produced.
    """
    if records < 1:
        raise ValueError("at least one record")
    specs = people_sources(sources)
    mapping = {spec.slug: spec.field_mapping for spec in specs}
    population = Population(seed)
    rng = random.Random(f"records:{seed}")
    maker = RecordMaker(rng, specs)
    buffers: dict[str, list[GeneratedRecord]] = {spec.slug: [] for spec in specs}
    stats = stats if stats is not None else GenerationStats()
    made = 0
    while made < records:
        members = population.household()
        stats.households += 1
        for person in members:
            made_here = maker.records(person)[: records - made]
            if not made_here:
                break
            stats.people += 1
            stats.people_in_shared_households += len(members) > 1
            for record in made_here:
                made += 1
                buffer = buffers[record.source]
                buffer.append(record)
                if len(buffer) > window:
                    position = rng.randrange(len(buffer))
                    buffer[position], buffer[-1] = buffer[-1], buffer[position]
                    yield _counted(buffer.pop(), stats, mapping)
    for slug in list(buffers):
        buffer = buffers.pop(slug)
        rng.shuffle(buffer)
        for record in buffer:
            yield _counted(record, stats, mapping)


def _counted(record: GeneratedRecord, stats: GenerationStats, mapping: dict) -> GeneratedRecord:
    stats.records += 1
    stats.per_source[record.source] += 1
    stats.corruptions.update(record.corruptions)
    present = _present_fields(record.payload["attributes"], mapping[record.source])
    stats.missing.update(name for name in FIELDS if name not in present)
    return record


# --- The data file: what every run reads ---------------------------------------------------------------------


def data_write(
    path: Path, *, records: int, sources: int, seed: int, batch_size: int = 1000, window: int = 5000
) -> dict:
    """Generate the records into ``path`` as JSON lines, one batch of one source per line:
    ``{"source": slug, "records": [payload, ...], "persons": [person id, ...]}``. Returns the facts of the
    data (also written to ``<path>.meta.json``)."""
    stats = GenerationStats()
    pending: dict[str, tuple[list[dict], list[int]]] = {}
    batches = 0
    started = time.perf_counter()
    with open(path, "w", encoding="utf-8") as out:

        def flush(slug: str) -> None:
            nonlocal batches
            payloads, persons = pending.pop(slug)
            line = {"source": slug, "records": payloads, "persons": persons}
            out.write(json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n")
            batches += 1

        for record in generate(records=records, sources=sources, seed=seed, window=window, stats=stats):
            payloads, persons = pending.setdefault(record.source, ([], []))
            payloads.append(record.payload)
            persons.append(record.person.id)
            if len(payloads) >= batch_size:
                flush(record.source)
        for slug in list(pending):
            flush(slug)
    meta = {
        "records": records,
        "sources": [spec.slug for spec in people_sources(sources)],
        "seed": seed,
        "batch_size": batch_size,
        "batches": batches,
        "generate_seconds": time.perf_counter() - started,
        **stats.as_dict(),
    }
    Path(f"{path}.meta.json").write_text(json.dumps(meta, indent=1))
    return meta


def data_batches(path: Path) -> Iterator[tuple[str, list[dict], list[int]]]:
    """The batches of a data file, in sending order: (source slug, payloads, person ids)."""
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            batch = json.loads(line)
            yield batch["source"], batch["records"], batch["persons"]


class Truth:
    """The person behind every record, by source and external id; a few bytes per record."""

    def __init__(self) -> None:
        self.by_source: dict[str, array] = {}

    @staticmethod
    def _number(external_id: str) -> int:
        return int(external_id.rsplit("-", 1)[1])

    def add(self, slug: str, external_id: str, person: int) -> None:
        persons = self.by_source.setdefault(slug, array("l"))
        number = self._number(external_id)
        if number >= len(persons):
            persons.extend([-1] * (number + 1 - len(persons)))
        persons[number] = person

    def person(self, slug: str, external_id: str) -> int:
        persons = self.by_source.get(slug)
        number = self._number(external_id)
        if persons is None or number >= len(persons) or persons[number] < 0:
            raise KeyError(f"{slug}:{external_id} was not generated")
        return persons[number]


# --- Scores -------------------------------------------------------------------------------------------------


def _pairs(counts):
    return (counts * (counts - 1) // 2).sum()


def partition_scores(persons: Sequence[int], clusters: Sequence[int]) -> dict:
    """How well a partition of records into predicted profiles (``clusters[i]``, any integer labels)
    matches the truth (``persons[i]``).

    - profile precision: the share of predicted profiles that hold the records of one person only;
    - profile recall: the share of people whose records all ended on one profile;
    - over-merge rate: the share of people who share a profile with another person;
    - pairwise precision / recall / F1 over the pairs of records put on one profile (counted, not listed,
      so it costs the same at a million records).
    """
    import numpy as np

    person = np.asarray(persons, dtype=np.int64)
    cluster = np.asarray(clusters, dtype=np.int64)
    if person.shape != cluster.shape:
        raise ValueError("one cluster label per record")
    if not len(person):
        return {"records": 0, "people": 0, "profiles": 0}
    # The distinct (cluster, person) cells and how many records each holds.
    cells, cell_counts = np.unique(np.stack([cluster, person], axis=1), axis=0, return_counts=True)
    cell_cluster, cell_person = cells[:, 0], cells[:, 1]
    cluster_ids, people_per_cluster = np.unique(cell_cluster, return_counts=True)
    person_ids, clusters_per_person = np.unique(cell_person, return_counts=True)
    profiles, people = len(cluster_ids), len(person_ids)
    pure = int((people_per_cluster == 1).sum())
    complete = int((clusters_per_person == 1).sum())
    mixed = set(cluster_ids[people_per_cluster > 1].tolist())
    over_merged = len(set(cell_person[np.isin(cell_cluster, list(mixed))].tolist())) if mixed else 0
    _, records_per_cluster = np.unique(cluster, return_counts=True)
    _, records_per_person = np.unique(person, return_counts=True)
    predicted = int(_pairs(records_per_cluster))
    true = int(_pairs(records_per_person))
    hits = int(_pairs(cell_counts))
    precision = hits / predicted if predicted else 1.0
    recall = hits / true if true else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    profile_precision, profile_recall = pure / profiles, complete / people
    return {
        "records": len(person),
        "people": people,
        "profiles": profiles,
        "profile_precision": profile_precision,
        "profile_recall": profile_recall,
        "profile_f1": 2 * profile_precision * profile_recall / (profile_precision + profile_recall)
        if profile_precision + profile_recall
        else 0.0,
        "over_merge_rate": over_merged / people,
        "people_over_merged": over_merged,
        "people_split": people - complete,
        "mixed_profiles": len(mixed),
        "pair_precision": precision,
        "pair_recall": recall,
        "pair_f1": f1,
        "pairs_predicted": predicted,
        "pairs_true": true,
    }


# --- Where recall goes ---------------------------------------------------------------------------------------

MISS_NO_KEY = "no blocking key shared"
MISS_IDENTIFIER_GUARD = "shared email/phone, held apart by the identifier guard"
MISS_CLUSTER_GUARD = "pair would link, the cluster guard refused"
MISS_LINK_GUARD = "above the link threshold, given names disagree (guard)"
MISS_REVIEW = "review band (0.5 to 0.99)"
MISS_TWO_PEOPLE = "names cannot be one person's: not even suggested"
MISS_NEW = "scored below review (< 0.5)"
MISS_ORDER = (
    MISS_NO_KEY,
    MISS_IDENTIFIER_GUARD,
    MISS_CLUSTER_GUARD,
    MISS_LINK_GUARD,
    MISS_REVIEW,
    MISS_TWO_PEOPLE,
    MISS_NEW,
)
_OUTCOME_RANK = {"link": 0, "review": 1, "new": 2}


def _shared_evidence(score) -> str:
    """What a scored pair agrees on, in short ("names+postcode", "one name", "nothing")."""
    agree = {f.field for f in score.fields if f.level not in ("missing", "disagree")}
    parts = []
    names = {"first_name", "last_name"} & agree
    if len(names) == 2 or score.field_level("first_name") == "swapped_with_last_name":
        parts.append("names")
    elif names:
        parts.append("one name")
    parts += [f for f in ("email", "phone", "birth_date") if f in agree]
    if "address_line1" in agree:
        parts.append("address")
    elif "postcode" in agree:
        parts.append("postcode")
    return "+".join(parts) or "nothing"


def miss_report(records: Sequence, persons: Sequence[int], clusters: Sequence[int], model) -> dict:
    """Why people are split: for every person whose records ended on more than one profile, the pair of
    their records on two different profiles that came closest to being joined (one sharing a blocking key
    or an email / phone first, then by outcome and probability), and what stopped it. ``records`` are
    ``MatchRecord``s in the order of ``persons`` and ``clusters``; ``model`` is the model that scored them.

    Returns {category: {"people": n, "evidence": {what the pair agrees on: n}}} in ``MISS_ORDER``. Reads
    the truth only to find the split people; what it reports is what the matcher saw."""
    from collections import defaultdict

    from profiles.matching import DEFAULT_BLOCKING_RULES, decide
    from profiles.matching.cluster import identifier_shared_by_two

    by_person: dict[int, list[int]] = defaultdict(list)
    for position, person in enumerate(persons):
        by_person[person].append(position)
    keys = {}

    def keys_of(position: int) -> dict[str, str]:
        if position not in keys:
            record = records[position]
            keys[position] = {rule.name: rule.key(record) for rule in DEFAULT_BLOCKING_RULES}
        return keys[position]

    report: dict[str, dict] = {}
    for positions in by_person.values():
        if len({clusters[p] for p in positions}) < 2:
            continue
        best = None
        for x, i in enumerate(positions):
            for j in positions[x + 1 :]:
                if clusters[i] == clusters[j]:
                    continue
                a, b = records[i], records[j]
                keyed = any(v and keys_of(j)[name] == v for name, v in keys_of(i).items())
                shared_id = bool((a.email and a.email == b.email) or (a.phone and a.phone == b.phone))
                score = model.score(a, b)
                decision = decide(score, pair=(a, b))
                rank = (not (keyed or shared_id), _OUTCOME_RANK[decision.outcome], -score.probability)
                if best is None or rank < best[0]:
                    best = (rank, a, b, keyed, shared_id, score, decision)
        _, a, b, keyed, shared_id, score, decision = best
        if shared_id and identifier_shared_by_two(a, b):
            category = MISS_IDENTIFIER_GUARD
        elif not keyed and not shared_id:
            category = MISS_NO_KEY
        elif decision.outcome == "link":
            category = MISS_CLUSTER_GUARD
        elif decision.outcome == "review":
            category = MISS_LINK_GUARD if score.probability >= 0.99 else MISS_REVIEW
        else:
            category = MISS_TWO_PEOPLE if "two people" in decision.reason else MISS_NEW
        entry = report.setdefault(category, {"people": 0, "evidence": Counter()})
        entry["people"] += 1
        entry["evidence"][_shared_evidence(score)] += 1
    return {
        category: {
            "people": report[category]["people"],
            "evidence": dict(report[category]["evidence"].most_common()),
        }
        for category in MISS_ORDER
        if category in report
    }


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# --- The product's path -------------------------------------------------------------------------------------


class BenchError(RuntimeError):
    pass


def _command_available(name: str) -> bool:
    from django.core.management import get_commands

    return name in get_commands()


def _call(name: str, *args: str) -> tuple[bool, str]:
    """Run a management command; (ran, what it printed or why it did not run)."""
    from io import StringIO

    from django.core.management import CommandError, call_command

    if not _command_available(name):
        return False, f"`manage.py {name}` does not exist (yet): skipped"
    out = StringIO()
    try:
        call_command(name, *args, stdout=out, stderr=out)
    except CommandError as exc:
        return False, f"`manage.py {name} {' '.join(args)}` failed: {exc}"
    return True, out.getvalue().strip()


def product_sources(specs: Sequence[SourceSpec]) -> dict:
    """The benchmark's sources, created through the product's service (or found, when they exist)."""
    from ingestion.models import Source
    from ingestion.services import source_create

    sources = {}
    for spec in specs:
        source = Source.objects.filter(slug=spec.slug).first()
        if source is None:
            source = source_create(
                slug=spec.slug, kind=spec.kind, default_region=spec.region, field_mapping=spec.field_mapping
            )
        sources[spec.slug] = source
    return sources


def product_assignments(truth: Truth) -> tuple[list[int], list[int], int]:
    """(person of each record, profile of each record as an integer, records without a profile), read from
    ``SourceRecord.profile_id``, following a merged profile to its survivor."""
    from ingestion.models import Source
    from profiles.models import Profile, SourceRecord

    slugs = dict(Source.objects.values_list("id", "slug"))
    survivor = dict(
        Profile.objects.filter(merged_into__isnull=False).values_list("id", "merged_into_id").iterator()
    )
    labels: dict = {}
    persons, clusters, orphans = array("l"), array("l"), 0
    rows = SourceRecord.objects.filter(deleted_at__isnull=True).values_list(
        "source_id", "external_id", "profile_id"
    )
    for source_id, external_id, profile_id in rows.iterator(chunk_size=20_000):
        seen = set()
        while profile_id in survivor and profile_id not in seen:
            seen.add(profile_id)
            profile_id = survivor[profile_id]
        if profile_id is None:
            orphans += 1
            label = -orphans
        else:
            label = labels.setdefault(profile_id, len(labels))
        persons.append(truth.person(slugs[source_id], external_id))
        clusters.append(label)
    return persons, clusters, orphans


def product_matchables(truth: Truth) -> tuple[list, list[int], list[int]]:
    """(``MatchRecord`` of each live record with a profile, its person, its profile as an integer), for
    ``miss_report``; merged profiles followed to their survivor, as ``product_assignments`` does."""
    from ingestion.models import Source
    from profiles.matching import MatchRecord
    from profiles.models import Profile, SourceRecord

    slugs = dict(Source.objects.values_list("id", "slug"))
    survivor = dict(
        Profile.objects.filter(merged_into__isnull=False).values_list("id", "merged_into_id").iterator()
    )
    labels: dict = {}
    records, persons, clusters = [], [], []
    rows = SourceRecord.objects.filter(deleted_at__isnull=True, profile_id__isnull=False).values_list(
        "id", "source_id", "external_id", "profile_id", "attributes"
    )
    for pk, source_id, external_id, profile_id, attributes in rows.iterator(chunk_size=20_000):
        seen = set()
        while profile_id in survivor and profile_id not in seen:
            seen.add(profile_id)
            profile_id = survivor[profile_id]
        slug = slugs[source_id]
        records.append(MatchRecord.from_attributes(pk, attributes or {}, source=slug))
        persons.append(truth.person(slug, external_id))
        clusters.append(labels.setdefault(profile_id, len(labels)))
    return records, persons, clusters


def product_outcome() -> dict:
    """What resolution left besides the profiles: records not processed, merges, conflicts, suggestions."""
    from django.db.models import Count

    from ingestion.models import InboundRecord
    from profiles.models import MatchSuggestion, MergeEvent, Profile, ResolutionConflict

    statuses = dict(InboundRecord.objects.values_list("status").annotate(n=Count("id")).order_by())
    problems = []
    if statuses.get("pending") or statuses.get("quarantined"):
        sample = list(
            InboundRecord.objects.filter(status="quarantined").values_list("error_field", "error")[:3]
        )
        problems.append(f"records not processed: {statuses}; e.g. {sample}")
    return {
        "inbound": statuses,
        "profiles_active": Profile.objects.filter(status=Profile.Status.ACTIVE).count(),
        "merges": MergeEvent.objects.count(),
        "conflicts": ResolutionConflict.objects.count(),
        "suggestions": dict(MatchSuggestion.objects.values_list("status").annotate(n=Count("id")).order_by()),
        "problems": problems,
    }


def product_run(
    batches: Iterable[tuple[str, list[dict], list[int]]],
    *,
    specs: Sequence[SourceSpec],
    records: int,
    train_after: float = 0.25,
    resolve_all: bool = True,
    misses: bool = False,
    tick=None,
    log=None,
    drain=None,
) -> dict:
    """Send the batches through the product's intake (``records_receive``; with Celery eager each batch is
    resolved once its transaction commits, as a worker would right after), train the matching model after
    ``train_after`` of the records when ``manage.py match_train`` exists, re-evaluate everything with
    ``manage.py resolve --all`` at the end when it exists, and score the profiles against the truth; with
    ``misses``, also why the people still split are split (``miss_report``, with the active model).
    ``drain``: with Celery workers resolving the batches, returns once none is pending (before training and
    at the end; counted in the intake time)."""
    from ingestion.services import records_receive

    log = log or (lambda message: print(message, file=sys.stderr))
    sources = product_sources(specs)
    truth = Truth()
    notes: list[str] = []
    timings = {"ingest": 0.0, "train": 0.0, "resolve_all": 0.0}
    trained = train_after > 1
    sent = 0

    def train() -> None:
        if drain is not None:
            started = time.perf_counter()
            drain()
            timings["ingest"] += time.perf_counter() - started
        started = time.perf_counter()
        ran, output = _call("match_train")
        timings["train"] += time.perf_counter() - started
        notes.append(f"match_train after {sent:,} records: {output or 'done'}" if ran else output)
        log(notes[-1])

    for slug, payloads, persons in batches:
        started = time.perf_counter()
        receipt = records_receive(source=sources[slug], records=payloads)
        timings["ingest"] += time.perf_counter() - started
        if receipt.rejections:
            first = receipt.rejections[0]
            raise BenchError(f"{slug}: {len(receipt.rejections)} records rejected, e.g. {first}")
        for payload, person in zip(payloads, persons, strict=True):
            truth.add(slug, payload["external_id"], person)
        sent += len(payloads)
        if tick is not None:
            tick()
        if sent * 10 // records > (sent - len(payloads)) * 10 // records:
            log(f"  {sent:,} records in, {sent / timings['ingest']:,.0f} rec/s")
        if not trained and sent >= train_after * records:
            trained = True
            train()
    if not trained:
        train()
    if drain is not None:
        started = time.perf_counter()
        drain()
        timings["ingest"] += time.perf_counter() - started
    if sent != records:
        raise BenchError(f"{sent} records sent, {records} expected")

    persons, clusters, orphans = product_assignments(truth)
    stages = {"after intake": {**partition_scores(persons, clusters), "without_profile": orphans}}
    outcome = {"after intake": product_outcome()}
    if resolve_all:
        started = time.perf_counter()
        ran, output = _call("resolve", "--all")
        timings["resolve_all"] = time.perf_counter() - started
        notes.append(f"resolve --all: {output or 'done'}" if ran else output)
        log(notes[-1])
        if ran:
            persons, clusters, orphans = product_assignments(truth)
            stages["after resolve --all"] = {
                **partition_scores(persons, clusters),
                "without_profile": orphans,
            }
            outcome["after resolve --all"] = product_outcome()
    result = {"stages": stages, "outcome": outcome, "timings": timings, "notes": notes}
    if misses:
        from profiles.services.matching import match_model_active

        active = match_model_active()
        if active is not None:
            result["misses"] = miss_report(*product_matchables(truth), active[1])
    return result


def run_product(data: Path, meta: dict, args: argparse.Namespace) -> dict:
    """The product path in its own database (created and dropped here, see ``bench.ingest``)."""
    from bench.ingest import (
        Analyzer,
        database_create,
        database_drop,
        django_setup,
        server_facts,
        workers_drain,
        workers_start,
        workers_stop,
    )

    db = database_create()
    print(f"benchmark database: {db.name} ({db.vendor})", file=sys.stderr)
    try:
        django_setup(db, argparse.Namespace(chunk_size=args.chunk_size, mode="eager"))
        from django.core.management import call_command

        call_command("migrate", verbosity=0, interactive=False)
        facts = server_facts()
        analyze = facts.get("autovacuum") == "off"
        analyzer = Analyzer(analyze)
        rss_before = peak_rss_mb()
        workers = getattr(args, "workers", 0)
        worker, drain = None, None
        if workers:
            worker, logfile = workers_start(db, workers, "people")
            drain = partial(workers_drain, worker, logfile)
        started = time.perf_counter()
        cpu = time.process_time()
        try:
            result = product_run(
                data_batches(data),
                specs=people_sources(len(meta["sources"])),
                records=meta["records"],
                train_after=args.train_after,
                resolve_all=not args.no_resolve_all,
                misses=getattr(args, "misses", False),
                tick=analyzer.tick,
                drain=drain,
            )
        finally:
            if worker is not None:
                workers_stop(worker)
        seconds = time.perf_counter() - started
        return {
            "run": "product",
            "workers": workers,
            "database": facts["server"],
            "analyze": analyze,
            **result,
            "seconds": seconds,
            "cpu_seconds": time.process_time() - cpu,
            "peak_rss_mb": peak_rss_mb(),
            "rss_before_mb": rss_before,
        }
    finally:
        if args.keep:
            print(f"kept the benchmark database {db.name}", file=sys.stderr)
        else:
            database_drop(db)


# --- The pure engine and Splink on the same records ---------------------------------------------------------


def _normalised(data: Path, meta: dict, rejected: Counter) -> Iterator[tuple[str, int, object]]:
    """(source, person, ``NormalisedRecord``) of every record, normalised exactly as intake does it; a record
    intake would reject never reaches resolution: it is left out and counted in ``rejected``."""
    from ingestion.normalise import EMAIL, PHONE, TEXT, RecordError, SourceRules, normalise_record

    specs = people_sources(len(meta["sources"]))
    normalisers = {"email": EMAIL, "phone": PHONE, **{spec.slug: TEXT for spec in specs}}
    rules = {
        spec.slug: SourceRules(spec.slug, spec.region, spec.field_mapping, normalisers) for spec in specs
    }
    for slug, payloads, persons in data_batches(data):
        for payload, person in zip(payloads, persons, strict=True):
            result = normalise_record(payload, rules[slug])
            if isinstance(result, RecordError):
                rejected[f"{result.field}: {result.reason}"] += 1
                continue
            yield slug, person, result


def _match_records(data: Path, meta: dict):
    """The records as the matcher sees them, their persons, and what intake would have rejected."""
    from profiles.matching import MatchRecord

    persons, records, rejected = array("l"), [], Counter()
    for slug, person, record in _normalised(data, meta, rejected):
        records.append(MatchRecord.from_attributes(len(records), record.attributes, source=slug))
        persons.append(person)
    return records, persons, dict(rejected)


def _default_identifier_rules():
    """The identifier rules a new installation starts with (ingestion migration 0002), without a database."""
    import importlib
    from types import SimpleNamespace

    from profiles.services.resolution import identifier_rules

    seed = importlib.import_module("ingestion.migrations.0002_seed_identifier_rules")
    return identifier_rules(SimpleNamespace(**rule) for rule in seed.DEFAULT_RULES)


def run_batch(data: Path, meta: dict, args: argparse.Namespace) -> dict:
    """The product's batch resolution on the records in memory: what ``resolve --all`` plans on a database
    holding them (``reevaluation.records_group``: identifiers first, under the identifier limits, blocked
    values and the deterministic guard, then probabilistic links under the guardrails), with the model the
    product's automatic training would have active (``matching.records_estimate`` on the first
    ``MAX_TRAINING_RECORDS`` records). No database: records in, profiles out, as the engine and Splink are
    timed."""
    import random

    # Django's settings and app registry (the services' modules import models); no database is opened.
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cdp.settings")
    os.environ.setdefault("SECRET_KEY", "bench-only-insecure-secret-key")
    os.environ.setdefault("CDP_SUPPRESSION_KEY", "bench-only-insecure-suppression-key")
    import django

    django.setup()
    from cdp.collector import collector_tune

    collector_tune()  # as the product's commands (resolve --all) and workers run
    from profiles.matching import MatchRecord
    from profiles.services.matching import MAX_TRAINING_RECORDS, records_estimate, records_session_blocks
    from profiles.services.reevaluation import ResolutionRecord, records_group

    rules = _default_identifier_rules()
    records, persons, rejected = [], array("l"), Counter()
    for slug, person, record in _normalised(data, meta, rejected):
        position = len(records)
        records.append(
            ResolutionRecord(
                position,
                None,
                slug,
                record.external_id,
                [key for key in record.identifiers if not rules.is_blocked(key)],
                MatchRecord.from_attributes(position, record.attributes, source=slug),
            )
        )
        persons.append(person)
    rss_before = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    rng, session_records = random.Random(0), None
    training = getattr(args, "batch_training", "first")
    if training == "first":
        # The model the streaming product has active at this size: its automatic estimates stop once one
        # was made on MAX_TRAINING_RECORDS records, so the last one saw (about) the first that many.
        sample = range(min(len(records), MAX_TRAINING_RECORDS))
    else:
        # What `manage.py match_train` estimates on the whole table: a random sample of records (u, term
        # frequencies, prior) and, on a larger table, whole blocks drawn from all the records for EM.
        sample = range(len(records))
        if len(records) > MAX_TRAINING_RECORDS:
            sample = sorted(rng.sample(sample, MAX_TRAINING_RECORDS))
            session_records = records_session_blocks([record.match for record in records], rng)
    estimate = records_estimate(
        [records[n].match for n in sample],
        rng=rng,
        seed=0,
        session_records=session_records,
        population=len(records) if session_records else None,
    )
    estimated = time.perf_counter() - started
    members, _, suggestions = records_group(
        records, rules, {}, (0, estimate.model) if estimate.usable else None
    )
    seconds = time.perf_counter() - started
    clusters = array("l", bytes(array("l").itemsize * len(records)))
    for label, group in enumerate(members.values()):
        for position in group:
            clusters[position] = label
    return {
        "run": "batch",
        "stages": {"batch": partition_scores(persons, clusters)},
        "rejected_at_intake": dict(rejected),
        "model": "estimated, active" if estimate.usable else f"estimated, not used: {estimate.unusable}",
        "training_records": len(sample),
        "training": training,
        "session_records": [len(m) for m in session_records] if session_records else None,
        "estimate_seconds": estimated,
        "review_pairs": len(suggestions),
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
    }


def run_engine(data: Path, meta: dict, args: argparse.Namespace) -> dict:
    from profiles.matching import link_records

    records, persons, rejected = _match_records(data, meta)
    rss_before = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    result = link_records(records)
    seconds = time.perf_counter() - started
    clusters = array("l", bytes(array("l").itemsize * len(records)))
    for label, group in enumerate(result.clusters):
        for position in group:
            clusters[position] = label
    misses = miss_report(records, persons, clusters, result.model) if getattr(args, "misses", False) else None
    return {
        "run": "engine",
        "stages": {"engine": partition_scores(persons, clusters)},
        **({"misses": misses} if misses is not None else {}),
        "rejected_at_intake": rejected,
        "candidate_pairs": len(result.pairs),
        "review_pairs": len(result.suggestions()),
        "refused_joins": len(result.refused_joins),
        "oversize_blocks_skipped": result.blocking.oversize_blocks_skipped,
        "match_share": result.model.match_share,
        "seconds": seconds,
        "cpu_seconds": time.process_time() - cpu,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
    }


def run_splink(data: Path, meta: dict, args: argparse.Namespace) -> dict:
    """Splink (DuckDB) deduplicating the same records, with its usual person-data settings: cleaned the
    way the engine cleans them, blocking rules like the engine's, u from random pairs, m by EM, clusters at
    the same 0.99 match probability the product links at."""
    import pandas as pd
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, block_on
    from splink.backends.duckdb import DuckDBAPI

    records, persons, rejected = _match_records(data, meta)
    frame = pd.DataFrame(
        {
            "unique_id": range(len(records)),
            "first_name": [r.first_name or None for r in records],
            "last_name": [r.last_name or None for r in records],
            "birth_date": [
                f"{r.birth_date[0]}-{int(r.birth_date[1]):02d}-{int(r.birth_date[2]):02d}"
                if r.birth_date
                else None
                for r in records
            ],
            "email": [r.email or None for r in records],
            "phone": [r.phone or None for r in records],
            "address_line1": [r.address_line1 or None for r in records],
            "city": [r.city or None for r in records],
            "postcode": [r.postcode or None for r in records],
        }
    )
    del records
    rss_before = peak_rss_mb()
    started, cpu = time.perf_counter(), time.process_time()
    db_api = DuckDBAPI()
    # DuckDB takes 80 % of the machine's memory by default; cap it (it spills to disk beyond) on a shared box.
    spill = Path(tempfile.gettempdir()) / f"cdp-bench-duckdb-{os.getpid()}"
    db_api.duckdb_con.execute(f"SET memory_limit = '{args.duckdb_memory}'")
    db_api.duckdb_con.execute(f"SET temp_directory = '{spill}'")
    table = db_api.register(frame)
    settings = SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("postcode", "substr(first_name, 1, 1)", "substr(last_name, 1, 1)"),
            block_on("last_name", "substr(birth_date, 1, 4)"),
            block_on("first_name", "last_name"),
            block_on("birth_date"),
            block_on("address_line1"),
            block_on("phone"),
            block_on("email"),
        ],
        comparisons=[
            cl.NameComparison("first_name").configure(term_frequency_adjustments=True),
            cl.NameComparison("last_name").configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison("birth_date", input_is_string=True),
            cl.EmailComparison("email"),
            cl.LevenshteinAtThresholds("phone", [1, 2]),
            cl.JaroWinklerAtThresholds("address_line1", [0.9, 0.7]),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            cl.LevenshteinAtThresholds("postcode", [1]).configure(term_frequency_adjustments=True),
        ],
        retain_intermediate_calculation_columns=False,
    )
    linker = Linker(table, settings, log_level=40)
    linker.training.estimate_probability_two_random_records_match(
        [block_on("first_name", "last_name", "birth_date"), block_on("email")], recall=0.7
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=5e6, seed=1)
    for rule in (block_on("birth_date"), block_on("postcode"), block_on("first_name", "last_name")):
        linker.training.estimate_parameters_using_expectation_maximisation(rule)
    predictions = linker.inference.predict(threshold_match_probability=0.5)
    clustered = linker.clustering.cluster_pairwise_predictions_at_threshold(
        predictions, threshold_match_probability=0.99
    ).as_pandas_dataframe()
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu
    shutil.rmtree(spill, ignore_errors=True)
    labels = {}
    clusters = array("l", bytes(array("l").itemsize * len(persons)))
    for unique_id, cluster_id in zip(clustered["unique_id"], clustered["cluster_id"], strict=True):
        clusters[int(unique_id)] = labels.setdefault(cluster_id, len(labels))
    return {
        "run": "splink",
        "stages": {"splink": partition_scores(persons, clusters)},
        "rejected_at_intake": rejected,
        "predicted_pairs": _splink_count(db_api, predictions),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "peak_rss_mb": peak_rss_mb(),
        "rss_before_mb": rss_before,
        "splink_version": __import__("splink").__version__,
    }


def _splink_count(db_api, table) -> int | None:
    try:
        return int(db_api.duckdb_con.sql(f"SELECT count(*) FROM {table.physical_name}").fetchall()[0][0])
    except Exception:  # the internals of another version: the count is a detail
        return None


RUNNERS = {"product": run_product, "batch": run_batch, "engine": run_engine, "splink": run_splink}


# --- Orchestration and report -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.people",
        description="Identity resolution on synthetic, realistically corrupted person records: the product's "
        "own path, the pure engine and Splink, with profile precision / recall, over-merge rate, pairwise "
        "scores, time and memory.",
    )
    parser.add_argument("--records", type=int, default=100_000, help="records to generate (default 100000)")
    parser.add_argument(
        "--sizes", help="several sizes, e.g. 10000,100000,1000000: every run at each, and a growth table"
    )
    parser.add_argument("--sources", type=int, default=4, help="crm, erp, web, support, survey, other1, ...")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--batch-size", type=int, default=1000, help="records per intake call (max 1000)")
    parser.add_argument("--engine", action="store_true", help="also run the pure engine on the same data")
    parser.add_argument(
        "--engine-only", action="store_true", help="run the pure engine instead of the product path"
    )
    parser.add_argument(
        "--batch",
        action="store_true",
        help="also run the product's batch resolution (what `resolve --all` plans) on the records in memory",
    )
    parser.add_argument(
        "--batch-only",
        action="store_true",
        help="run the batch resolution instead of the product path (no database: for large sizes)",
    )
    parser.add_argument(
        "--batch-training",
        choices=("first", "table"),
        default="first",
        help="the batch's model: 'first' estimated on the first 50,000 records, as the automatic training "
        "leaves it (default); 'table' as `manage.py match_train` estimates it on the whole table (a random "
        "sample of 50,000 records, and whole blocks drawn from all of them for EM)",
    )
    parser.add_argument(
        "--splink", action="store_true", help="also run Splink on the same data (if installed)"
    )
    parser.add_argument(
        "--train-after",
        type=float,
        default=0.25,
        help="share of the records sent before `manage.py match_train` runs (default 0.25; above 1: after all)",
    )
    parser.add_argument(
        "--no-resolve-all", action="store_true", help="do not run `manage.py resolve --all` at the end"
    )
    parser.add_argument(
        "--chunk-size", type=int, help="override CDP_RESOLVE_CHUNK_SIZE (records per resolution transaction)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the product run's database")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="product run: resolve in N Celery worker processes from the broker (CELERY_BROKER_URL), as in "
        "production, instead of in this process (default 0: eager)",
    )
    parser.add_argument(
        "--misses",
        action="store_true",
        help="also say why the people still split are split (the closest pair of their records on two "
        "profiles: no blocking key shared, a guard, the review band, scored too low), for the product and the "
        "engine",
    )
    parser.add_argument(
        "--duckdb-memory",
        default="8GB",
        help="memory limit of Splink's DuckDB (default 8GB; it spills beyond)",
    )
    parser.add_argument("--data-dir", help="where the generated data goes (default: a temporary directory)")
    parser.add_argument("--json", metavar="PATH", help="also write every figure as JSON to PATH")
    parser.add_argument("--only", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.size_list = [int(size) for size in args.sizes.split(",")] if args.sizes else [args.records]
    if any(size < 1 for size in args.size_list):
        parser.error("sizes must be at least 1")
    if not 1 <= args.batch_size <= 1000:
        parser.error("--batch-size must be between 1 and 1000 (the API's limit per request)")
    if args.sources < 1:
        parser.error("--sources must be at least 1")
    return args


def _child(run: str, data: Path, args: argparse.Namespace) -> dict | None:
    command = [sys.executable, "-m", "bench.people", "--only", run, "--data", str(data)]
    if args.chunk_size:
        command += ["--chunk-size", str(args.chunk_size)]
    command += ["--train-after", str(args.train_after)]
    if args.no_resolve_all:
        command.append("--no-resolve-all")
    if args.keep:
        command.append("--keep")
    if args.workers:
        command += ["--workers", str(args.workers)]
    if args.misses:
        command.append("--misses")
    command += ["--duckdb-memory", args.duckdb_memory, "--batch-training", args.batch_training]
    started = time.perf_counter()
    process = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
    if process.returncode != 0:
        print(f"{run}: failed (exit status {process.returncode})", file=sys.stderr)
        return None
    result = json.loads(process.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - started
    return result


def _runs(args: argparse.Namespace) -> list[str]:
    runs = ["engine"] if args.engine_only else ["batch"] if args.batch_only else ["product"]
    if args.batch and "batch" not in runs:
        runs.append("batch")
    if args.engine and "engine" not in runs:
        runs.append("engine")
    if args.splink:
        try:
            import splink  # noqa: F401
        except ImportError:
            print("splink is not installed (pip install splink): the Splink run is skipped", file=sys.stderr)
        else:
            runs.append("splink")
    return runs


def _data_report(meta: dict) -> list[str]:
    records = meta["records"]
    lines = [
        f"data: {records:,} records of {meta['people']:,} people in {meta['households']:,} households "
        f"({meta['people_in_shared_households'] / meta['people']:.0%} of the people share their address with "
        f"another customer); seed {meta['seed']}; generated in {meta['generate_seconds']:.1f} s",
        "  per source: " + ", ".join(f"{slug} {count:,}" for slug, count in meta["per_source"].items()),
        "  corruptions (share of records): "
        + ", ".join(f"{kind} {count / records:.1%}" for kind, count in meta["corruptions"].items()),
        "  missing (share of records): "
        + ", ".join(f"{name} {count / records:.0%}" for name, count in meta["missing"].items()),
    ]
    return lines


def _result_rows(size: int, result: dict) -> list[str]:
    rows = []
    seconds = result["seconds"]
    for stage, s in result["stages"].items():
        rows.append(
            f"{size:>9,} {stage:<24} {s['profile_precision']:7.4f} {s['profile_recall']:7.4f} "
            f"{s['over_merge_rate']:8.4f} | {s['pair_precision']:7.4f} {s['pair_recall']:7.4f} "
            f"{s['pair_f1']:7.4f} | {s['profiles']:>9,} {s['people']:>9,} | {seconds:8.1f} "
            f"{size / seconds if seconds else 0:8,.0f} {result['peak_rss_mb']:8,.0f}"
        )
    return rows


HEADER = (
    f"{'records':>9} {'run / stage':<24} {'prof P':>7} {'prof R':>7} {'overmrg':>8} | {'pair P':>7} "
    f"{'pair R':>7} {'pair F1':>7} | {'profiles':>9} {'people':>9} | {'time s':>8} {'rec/s':>8} {'peak MB':>8}"
)


def _miss_lines(name: str, size: int, result: dict) -> list[str]:
    misses = result["misses"]
    split = sum(entry["people"] for entry in misses.values())
    lines = [
        f"  {name} at {size:,}: why {split:,} people are split (their closest pair of records on two profiles)"
    ]
    for category, entry in misses.items():
        evidence = ", ".join(f"{what} {n}" for what, n in list(entry["evidence"].items())[:5])
        lines.append(f"    {entry['people']:>6,}  {category:<56} agreeing on: {evidence}")
    return lines


def report(results: dict[int, dict[str, dict]], metas: dict[int, dict]) -> str:
    lines = [""]
    for meta in metas.values():
        lines += _data_report(meta)
    lines += ["", HEADER, "-" * len(HEADER)]
    for size, runs in results.items():
        for name, result in runs.items():
            label = {"product": "product: ", "batch": "", "engine": "", "splink": ""}[name]
            for row in _result_rows(size, result):
                lines.append(row.replace(" after", f" {label}after", 1) if label else row)
    lines.append(
        "prof P: share of profiles holding one person; prof R: share of people whose records are all on one "
        "profile; overmrg: share of people sharing a profile with another person; pair: pairs of records on "
        "one profile; time: the run's resolution work (product: intake + training + resolve --all; batch, "
        "engine and Splink: records in, clusters out); peak MB: the run's own process (maximum RSS)."
    )
    for size, runs in results.items():
        for name, result in runs.items():
            if name == "product":
                t = result["timings"]
                lines.append(
                    f"  product at {size:,}: {result['database']}; intake {t['ingest']:.1f} s, match_train "
                    f"{t['train']:.1f} s, resolve --all {t['resolve_all']:.1f} s; CPU of the process "
                    f"{result['cpu_seconds']:.1f} s"
                )
                for stage, outcome in result["outcome"].items():
                    lines.append(
                        f"    {stage}: {outcome['profiles_active']:,} active profiles, {outcome['merges']:,} "
                        f"merges, {outcome['conflicts']:,} conflicts, suggestions {outcome['suggestions']}"
                    )
                    for problem in outcome["problems"]:
                        lines.append(f"    PROBLEM: {problem}")
                for note in result["notes"]:  # a command's first and last lines (all of it is in --json)
                    parts = note.strip().splitlines() or [""]
                    lines.append(f"    note: {parts[0]}" + (f" [...] {parts[-1]}" if len(parts) > 1 else ""))
            elif name == "batch":
                blocks = result.get("session_records")
                drawn = (
                    f"; EM on whole blocks of {'/'.join(f'{n:,}' for n in blocks)} records" if blocks else ""
                )
                lines.append(
                    f"  batch at {size:,}: model {result['model']} (training '{result.get('training', 'first')}':"
                    f" {result['training_records']:,} records{drawn}, {result['estimate_seconds']:.1f} s), "
                    f"{result['review_pairs']:,} pairs to review"
                )
            elif name == "engine":
                lines.append(
                    f"  engine at {size:,}: {result['candidate_pairs']:,} candidate pairs, "
                    f"{result['review_pairs']:,} pairs to review, {result['refused_joins']:,} refused joins, "
                    f"{result['oversize_blocks_skipped']:,} oversize blocks skipped"
                )
            elif name == "splink":
                lines.append(f"  splink {result['splink_version']} at {size:,} (DuckDB)")
            if "misses" in result:
                lines += _miss_lines(name, size, result)
    if len(results) > 1:
        lines += ["", "How the cost grows (exponent k in time ~ records^k against the previous size):"]
        names = sorted({name for runs in results.values() for name in runs})
        for name in names:
            previous = None
            for size, runs in results.items():
                result = runs.get(name)
                if result is None:
                    continue
                growth = ""
                if previous is not None:
                    k_time = math.log(result["seconds"] / previous[1]) / math.log(size / previous[0])
                    k_mem = math.log(result["peak_rss_mb"] / previous[2]) / math.log(size / previous[0])
                    growth = f"  time k={k_time:.2f}, memory k={k_mem:.2f}"
                lines.append(
                    f"  {name:<8} {size:>9,} records: {result['seconds']:8.1f} s, "
                    f"{size / result['seconds']:8,.0f} rec/s, peak {result['peak_rss_mb']:7,.0f} MB{growth}"
                )
                previous = (size, result["seconds"], result["peak_rss_mb"])
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only:
        data = Path(args.data)
        meta = json.loads(Path(f"{data}.meta.json").read_text())
        result = RUNNERS[args.only](data, meta, args)
        print(json.dumps(result, default=str))
        return 0
    runs = _runs(args)
    results: dict[int, dict[str, dict]] = {}
    metas: dict[int, dict] = {}
    with tempfile.TemporaryDirectory(prefix="cdp-people-", dir=args.data_dir) as directory:
        for size in args.size_list:
            data = Path(directory) / f"people-{size}-{args.sources}-{args.seed}.jsonl"
            print(f"generating {size:,} records ...", file=sys.stderr)
            metas[size] = data_write(
                data, records=size, sources=args.sources, seed=args.seed, batch_size=args.batch_size
            )
            results[size] = {}
            for run in runs:
                print(f"{run} at {size:,} records ...", file=sys.stderr)
                result = _child(run, data, args)
                if result is not None:
                    results[size][run] = result
            data.unlink()
    print(report(results, metas))
    if args.json:
        Path(args.json).write_text(json.dumps({"data": metas, "results": results}, indent=2, default=str))
    failed = any(
        run not in results[size] or any(o["problems"] for o in results[size][run].get("outcome", {}).values())
        for size in results
        for run in runs
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
