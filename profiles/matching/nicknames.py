"""Given-name variants: groups of names that may stand for the same person (a formal name and its usual short
forms). Two given names are nickname-compatible when they share a group; a name may be in several groups
(``jon`` is short for both John and Jonathan), and two names of different groups are not made compatible
through a third.

The groups come from the ``nicknames`` package (Carlton Northern's hand-curated names.csv, Apache-2.0: about
1,100 English given names with their nicknames, e.g. Cynthia / Cindy, Melissa / Missy, Teresa / Tess), one
group per formal name, and from the table below: the spelling variants and forms that list leaves out
(Catherine / Katherine, Stephen / Steven, William / Liam). Data, not logic: extend the table freely.
"""

from functools import cache

from nicknames import name_triplets

NICKNAME_GROUPS_TEXT = """
abigail abby abbie gail
albert al bert bertie
alexander alex alec sandy xander sasha
alexandra alex alexa sandra sandy lexi
alfred alf alfie fred
andrew andy drew
angus gus
anthony tony ant
barbara barb babs barbie
barry baz
benjamin ben benny benji
bernard bernie barney
caroline caz carrie
catherine katherine kathryn cathy kathy kate katie cat kitty
charles charlie chuck chas chaz
charlotte charlie lottie
christina christine chris tina chrissy kristina
christopher chris kit topher
daniel dan danny
david dave davy
deborah debra deb debbie
donald don donny
dorothy dot dotty dolly
edward ed eddie ted teddy ned
eleanor ellie nell nora
elizabeth liz lizzie beth betty bess bessie eliza elisa lisa libby
emily em emmy
frances fran frankie fanny
francesca fran frankie
francis frank frankie
frederick fred freddie freddy
gabriel gabe
gary gaz
geoffrey jeffrey geoff jeff
gerald gerry jerry
gregory greg
harold harry hal
henry harry hank hal
imogen immy
isabella isabel isabelle izzy bella
jacob jake jakey
james jim jimmy jamie jim
jennifer jen jenny jenni
john jon johnny jack
jonathan jon jonny jonathon johnathan nathan
joseph joe joey jo
josephine jo josie
joshua josh
katherine kate katie kath kathy kay
kathleen kath kathy kathie
kenneth ken kenny
lawrence laurence larry laurie
leonard len lenny leo
madeleine madeline maddie maddy
margaret maggie meg peggy marge madge greta
matthew matt matty
michael mike mikey mick mickey
millicent millie milly
natalie nat
nathaniel nathan nat nate
nicholas nick nicky
nicola nicky nikki
oliver olly ollie
patricia pat patty trish tricia
patrick pat paddy
peter pete
philip phillip phil pip
philippa pippa pip
rebecca becky becca bex
richard rick ricky dick rich richie
robert rob robbie bob bobby bert
ronald ron ronnie
rosemary rosie
samantha sam sammy
samuel sam sammy
stanley stan
stephen steven steve stevie
susan sue susie suzanne
theodora thea
theodore theo ted teddy
thomas tom tommy
timothy tim timmy
victoria vicky tori
walter walt wally
william will bill billy willy liam
zachary zach zack
"""


def _folded(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch.isalpha())


@cache
def nickname_groups() -> tuple[frozenset[str], ...]:
    """The package's groups (a formal name and its nicknames), then the table's."""
    package: dict[str, set[str]] = {}
    for triplet in name_triplets():
        formal, nickname = _folded(triplet.name1), _folded(triplet.name2)
        if formal and nickname:
            package.setdefault(formal, {formal}).add(nickname)
    table = [line.split() for line in NICKNAME_GROUPS_TEXT.strip().splitlines() if line.strip()]
    return tuple(frozenset(group) for group in [*package.values(), *table])
