"""The names and places the synthetic people are made of: given names with their nicknames, surnames (a
common list and a long tail built from parts), streets, cities with their ZIP prefixes and area codes,
mobile area codes, email providers and companies, and the slips a keyboard makes. Lists are in order of
popularity; ``population.Population`` weights them by rank.
"""


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
