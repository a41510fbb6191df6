#!/usr/bin/env python3
"""Regenerates common-passwords.txt: passwords that people pick first and that guessing
tools therefore try first. Assembled for Conclave from well-known patterns (popular words
and names, "password" variants, keyboard walks, digit and letter runs, years and the usual
suffixes); not copied from any leaked list. Deterministic: run it and commit the output.

    python3 crates/store/data/common-passwords.py > crates/store/data/common-passwords.txt
"""

# The most popular choices: every suffix below is appended to these.
TOP = """
password passwort passwd pass qwerty qwertz azerty letmein welcome willkommen admin
administrator root login master dragon monkey football fussball baseball sunshine princess
shadow superman iloveyou ichliebedich trustno1 secret geheim hallo hello changeme default
guest test qazwsx abc abcd asdf zxcvbn
""".split()

# Further common words and names: only a few suffixes are appended to these.
MORE = """
soccer hockey batman whatever freedom starwars pokemon minecraft computer internet charlie
michael jennifer jordan daniel hunter summer winter love lovely angel flower cookie
chocolate banana orange apple killer george hannah jasmine mustang ferrari porsche berlin
hamburg germany deutschland bayern schalke liverpool chelsea arsenal barcelona testing
zaq12wsx abcdef asdfgh qwertyuiop qwertzuiop asdfghjkl zxcvbnm yxcvbnm azertyuiop 1q2w3e4r
1qaz2wsx qweasd qweasdzxc access private office company service support server system student
school
hellokitty spiderman ironman pikachu naruto fortnite roblox lovers loveme babygirl baby
mother father family friends friend forever nothing something anything everything
buster tigger bailey lucky harley maggie ginger pepper coffee cheese1 butter honey
sweety sweetie sweetheart darling kitten kitty puppy doggy tiger lion eagle falcon
phoenix wizard merlin gandalf warrior ninja samurai pirate viking knight legend
jessica ashley amanda nicole michelle andrea stefan andreas markus sabine claudia
christian martin peter julia anna laura lisa sarah thomas1 alexander maximilian
sebastian tobias jonas lukas leon paul felix elias noah emma mia sophia marie lena
robert william richard joseph james david john anthony matthew joshua andrew ryan
justin brandon tyler austin kevin jason brian steven edward ronald anthony1 patrick
victoria elizabeth jennifer1 heather melissa amber samantha brittany danielle
january february march april may june july august september october november december
januar februar maerz juni juli oktober dezember monday tuesday wednesday thursday
friday saturday sunday montag dienstag mittwoch donnerstag freitag samstag sonntag
spring autumn sommer herbst fruehling frühling schnee sonne mond sterne
london paris munich muenchen koeln cologne frankfurt stuttgart dresden leipzig vienna
wien zurich zuerich america canada england france italia espana europe
mercedes bmw audi volkswagen toyota honda corvette camaro yamaha harleydavidson
juventus realmadrid manchester dortmund borussia werder hertha
music guitar piano rockstar metallica nirvana beatles eminem
shalom jesus jesuschrist blessed heaven angel1 godisgood christ faith
matrix1 hacker hacked security secure safety protect defender firewall
database oracle mysql postgres network wireless router modem windows linux ubuntu
debian apple1 macbook iphone android samsung google facebook twitter instagram
youtube netflix amazon microsoft skype zoom jitsi conclave meeting meetings
conference video camera webcam microphone
teacher schule lehrer student1 university college
doctor nurse hospital police polizei feuerwehr
welcome1 hello1 qwerty1 letmein1 master1 dragon1 monkey1 shadow1 sunshine1
starwars1 superman1 batman1 football1 baseball1 princess1 charlie1 michael1
""".split()

SUFFIXES_TOP = (
    [""] + "1 2 3 7 9 12 13 21 22 69 77 88 99 00 01 11 007 123 321 1234 12345 123456 1234567"
    " 12345678 123456789 1234567890 ! !! 1! 12! 123! 1234! 12345! ? . @ # $ * 1@ 123@ 123#"
    " 123$ !@# 1a 1q 2a"
    .split()
    + [str(y) for y in range(1960, 2031)]
    + [str(y) + "!" for y in range(2015, 2031)]
)
SUFFIXES_MORE = [""] + "1 12 123 1234 ! 1! 2024 2025 2026".split()
PREFIXES = "my the new 1 123 i".split()

LEET = str.maketrans({"a": "@", "o": "0", "e": "3", "i": "1", "s": "$"})
LEET2 = str.maketrans({"a": "4", "o": "0", "e": "3", "i": "1", "s": "5"})

ROWS = [
    "1234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qwertzuiop",
    "yxcvbnm",
    "azertyuiop",
    "qsdfghjklm",
    "wxcvbn",
    "!@#$%^&*()",
]


def walks():
    out = set()
    for row in ROWS:
        for text in (row, row[::-1]):
            for start in range(len(text)):
                for end in range(start + 4, len(text) + 1):
                    out.add(text[start:end])
    cols = ["1qaz", "2wsx", "3edc", "4rfv", "5tgb", "6yhn", "7ujm", "8ik,", "9ol.", "0p;/"]
    cols_de = ["1qay", "2wsx", "3edc", "4rfv", "5tgb", "6zhn", "7ujm"]
    for cs in (cols, cols_de):
        for start in range(len(cs)):
            for end in range(start + 1, len(cs) + 1):
                out.add("".join(cs[start:end]))
                out.add("".join(c[::-1] for c in cs[start:end]))
    for a, b in (("1234567890", "qwertyuiop"), ("1234567890", "qwertzuiop"),
                 ("qwertyuiop", "asdfghjkl"), ("1234567890", "azertyuiop")):
        for n in range(3, 11):
            out.add("".join(x + y for x, y in zip(a[:n], b[:n])))
            out.add("".join(y + x for x, y in zip(a[:n], b[:n])))
    out |= {
        "qazwsx", "qazwsxedc", "qazwsxedcrfv", "zaq1xsw2", "zaq12wsx", "zaq1zaq1",
        "1qaz2wsx", "1qaz2wsx3edc", "1qaz@wsx", "!qaz2wsx", "!qaz@wsx", "qwe123",
        "qweasd", "qweasdzxc", "qweasdzxc123", "asdqwe123", "zxcasdqwe", "1q2w3e",
        "1q2w3e4r", "1q2w3e4r5t", "1q2w3e4r5t6y", "q1w2e3r4", "q1w2e3r4t5",
        "qwer1234", "asdf1234", "zxcv1234", "1234qwer", "1234asdf", "abcd1234",
        "1234abcd", "a1b2c3", "a1b2c3d4", "a1b2c3d4e5", "a1s2d3f4", "abc123",
        "abc12345", "abc123456", "abcabc", "abcabc123", "qwerty12345", "qwertyqwerty",
        "asdfasdf", "asdfghjkl;", "poiuytrewq", "lkjhgfdsa", "mnbvcxz",
    }
    return {w for w in out if len(w) >= 6}


def runs():
    out = set()
    digits = "0123456789"
    for d in digits:
        for n in range(6, 17):
            out.add(d * n)
    for start in range(10):
        for n in range(6, 17):
            up = "".join(digits[(start + i) % 10] for i in range(n))
            out.add(up)
            out.add(up[::-1])
    for base in ("12", "123", "1234", "12345", "123456", "321", "4321", "54321", "654321",
                 "11", "112", "1122", "69", "007", "101", "1010", "2000", "1212", "1313",
                 "147", "159", "258", "369", "789", "987", "520", "666", "777", "888"):
        for n in range(2, 8):
            s = base * n
            if 6 <= len(s) <= 16:
                out.add(s)
    out |= {
        "112233", "11223344", "1122334455", "111222", "111222333", "123321", "12344321",
        "1234554321", "123454321", "147258", "147258369", "159753", "1597534862",
        "147852", "147852369", "741852963", "963852741", "789456", "789456123",
        "456789", "456123", "852456", "5201314", "1314520", "131313", "696969",
        "420420", "000000", "123654", "1236987", "142536", "123123123", "102030",
        "10203040", "11111111", "12341234", "98765432", "192837465", "135792468",
        "246813579", "1029384756", "0192837465", "7777777", "8675309",
    }
    letters = "abcdefghijklmnopqrstuvwxyz"
    for c in letters:
        for n in range(6, 13):
            out.add(c * n)
    for n in range(6, 27):
        out.add(letters[:n])
        out.add(letters[::-1][:n])
    for year in range(1950, 2031):
        out.add(f"{year}{year}")
        for mm in ("01", "12"):
            out.add(f"{mm}{mm}{year}")
    for word in ("abc", "xyz", "aaa", "aaaa", "abcd"):
        for n in range(2, 5):
            s = word * n
            if len(s) >= 6:
                out.add(s)
    return out


def variants():
    out = set()
    for w in TOP:
        for pre in [""] + PREFIXES:
            for suf in SUFFIXES_TOP if pre == "" else ["", "1", "123"]:
                out.add(pre + w + suf)
        for form in {w.translate(LEET), w.translate(LEET2)} - {w}:
            for suf in SUFFIXES_MORE:
                out.add(form + suf)
        out.add(w + w)
        out.add(w[::-1])
    for w in MORE:
        for suf in SUFFIXES_MORE:
            out.add(w + suf)
        out.add(w.translate(LEET))
    pw = ["password", "passw0rd", "p@ssword", "p@ssw0rd", "pa$$word", "pa$$w0rd",
          "p4ssw0rd", "p455w0rd", "p4ssword", "passwort", "passw0rt", "p@ssw0rt",
          "pa55word", "pa55w0rd", "passwrd", "pasword", "paswort", "password123",
          "passwort123", "kennwort", "kennw0rt", "passphrase", "geheimnis"]
    for p in pw:
        for suf in SUFFIXES_MORE + ["12345678", "2023", "2027", "!!", "#1", "$", "?"]:
            out.add(p + suf)
        for pre in PREFIXES + ["super", "secret", "admin", "user", "my-", "the-"]:
            out.add(pre + p)
    out |= {
        "iloveyou!", "iloveyou2", "letmein!", "letmeinnow", "opensesame", "changeit",
        "changethis", "changeme!", "pleasechangeme", "temp1234", "temppassword",
        "temporary", "welcome@123", "admin@123", "root@123", "admin1234!", "administrator1",
        "adminadmin", "rootroot", "toortoor", "guestguest", "useruser", "testtest",
        "test1234", "demo1234", "demodemo", "sample123", "default1", "nopassword",
        "noentry", "openup", "access14", "qwertyqwerty1", "correcthorsebatterystaple",
        "trustnoone", "iwantu", "sexsexsex", "loveyou1", "ihateyou", "fuckyou", "fuckoff",
        "asshole", "whatever1", "nothing1", "blink182", "michaeljordan", "jordan23",
        "kobe24", "lebron23", "cr7cr7cr7", "messi10", "1qaz2wsx!", "zaq!2wsx",
    }
    return out


def main():
    words = {w.lower() for w in variants() | walks() | runs()}
    words = sorted(w for w in words if 6 <= len(w) <= 64 and w.isprintable() and " " not in w)
    print("# Common passwords, rejected by the password policy (case-insensitive match).")
    print("# Generated by common-passwords.py in this directory; one entry per line.")
    for w in words:
        print(w)


main()
