"""Built-in table of English given-name variants: each line is one group of names that may stand for the
same person (a formal name and its usual short forms). Data, not logic: extend it freely.

A name may appear in several groups (``jon`` is short for both John and Jonathan); two given names are
nickname-compatible when they share a group.
"""

NICKNAME_GROUPS_TEXT = """
abigail abby abbie gail
albert al bert bertie
alexander alex alec sandy xander
alexandra alex alexa sandra sandy lexi
alfred alf alfie fred
andrew andy drew
anthony tony ant
barbara barb babs barbie
benjamin ben benny benji
bernard bernie barney
catherine katherine kathryn cathy kathy kate katie cat kitty
charles charlie chuck chas chaz
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
francis frank frankie
frederick fred freddie freddy
gabriel gabe
geoffrey jeffrey geoff jeff
gerald gerry jerry
gregory greg
harold harry hal
henry harry hank hal
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
kenneth ken kenny
lawrence laurence larry laurie
leonard len lenny leo
margaret maggie meg peggy marge madge greta
matthew matt matty
michael mike mikey mick mickey
nathaniel nathan nat nate
nicholas nick nicky
patricia pat patty trish tricia
patrick pat paddy
peter pete
philip phillip phil pip
rebecca becky becca
richard rick ricky dick rich richie
robert rob robbie bob bobby bert
ronald ron ronnie
samantha sam sammy
samuel sam sammy
stephen steven steve stevie
susan sue susie suzanne
theodore theo ted teddy
thomas tom tommy
timothy tim timmy
victoria vicky tori
walter walt wally
william will bill billy willy liam
zachary zach zack
"""


def nickname_groups() -> list[frozenset[str]]:
    return [frozenset(line.split()) for line in NICKNAME_GROUPS_TEXT.strip().splitlines() if line.strip()]
