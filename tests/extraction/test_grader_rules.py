"""The rules a careful grader follows, one response each, through ``promptmill.extract``.

Each rule is held by the training split too (``tests/data/extraction_cases.jsonl``, ids
``tr5-*`` to ``tr10-*``, ``tr29-*`` to ``tr49-*``); here one response per rule, with the method
that must decide it, so that breaking one rule fails a test that names it, not only a
percentage.
"""

from __future__ import annotations

from typing import Any

import pytest

from promptmill.extract import extract_answer

PLANETS = ["Mercury", "Venus", "Earth", "Mars"]
LAWS = ["First law", "Second law", "Third law", "Law of gravitation"]
COUNTS = ["Two", "Three", "Four", "Five"]
PRESIDENTS = ["John Adams", "George Washington", "Thomas Jefferson", "James Madison"]
WRITERS = ["Edgar Allan Poe", "Mark Twain", "Herman Melville", "Henry James"]
BOTH = ["Iron", "Copper", "Wood", "Both A and B"]

NUMBERS = ["2", "3", "4", "An error is raised"]
UNITS = ["Tesla", "Weber", "Henry", "Farad"]
ENERGIES = ["Heat", "Nuclear energy", "Sound", "Light"]
ORGANS = ["Heart", "Lung", "Stomach", "Skin", "Liver"]
CHOICE_RULES = [
    # round grader19c: a tag or a nested field that names the picked letter; a set-aside
    # object's letter is not the pick; a task list with one box ticked, two ticked: none
    ("<working>Mars is red from iron oxide.</working>\n<picked_option>D</picked_option>",
     PLANETS, "Which planet is called the Red Planet?", "D", "structured_letter"),
    ('{"ruled_out": {"letter": "A"}, "conclusion": {"option_letter": "C", "name": "Earth"}}',
     PLANETS, "Which planet do we live on?", "C", "structured_letter"),
    ("Pick one:\n+ [ ] Mercury\n+ [ ] Venus\n+ [X] Earth — home\n+ [ ] Mars", PLANETS,
     "Which planet do we live on?", "C", "ticked_box"),
    ("+ [X] Mercury\n+ [ ] Venus\n+ [X] Earth\n+ [ ] Mars", PLANETS,
     "Which planet do we live on?", None, "multiple"),
    # round grader19c: "none of the options given is right" after what looked like a pick;
    # a question back before any pick; "it depends": a letter for each case
    ("Mars looks red, but the question asks about Jupiter's Great Red Spot, so none of the "
     "options given is really correct.", PLANETS, "Which planet has the Great Red Spot?",
     None, "no_option_fits"),
    ("Venus is brightest in the evening sky, though Mars can rival it. Would you confirm "
     "whether you mean planets only or all bodies?", PLANETS,
     "Which is the brightest object in the night sky?", None, "asks_back"),
    ("That depends on the timescale. B when averaged over a year, D when measured in one "
     "orbit. Tell me which you mean and I will settle it.", PLANETS,
     "Which planet is closest to Earth?", None, "asks_back"),
    ("It depends what you count: Earth if you mean density, Mercury if you mean the core "
     "share, so C for the first, A for the second.", PLANETS,
     "Which planet is the densest?", None, "hedge"),
    ("Mercury orbits fastest; none of the other three comes close. The answer is A.", PLANETS,
     "Which planet orbits the Sun fastest?", "A", "answer_statement"),
    # round grader19c: the one statement said to hold after a walk through them; the option
    # a clause names, then "is the one that fits"
    ("A fails since it has no moons to speak of, B fails too, D has two moons. Just option C "
     "works for a single large moon.", PLANETS, "Which planet has exactly one moon?", "C",
     "only_letter_holds"),
    ("Mercury and Venus have no moons and Mars has two; Earth is the one that fits.", PLANETS,
     "Which planet has exactly one moon?", "C", "option_text"),
    # round grader19c: the option before the last, and "the final option" (not "the final
    # answer"), named by position
    ("Oceans cover most of its surface: this makes it the last-but-one option.", PLANETS,
     "Which planet do we live on?", "C", "ordinal"),
    ("Its year is 88 days. So it's the next-to-last option on the list.", ["Venus", "Earth",
     "Mercury", "Mars"], "Which planet has an 88-day year?", "C", "ordinal"),
    ("Of the four it lies farthest out, so the final choice.", PLANETS,
     "Which planet is farthest from the Sun?", "D", "ordinal"),
    # round grader19c: "All of ..." / "Both ..." described by what it covers
    ("Iron and copper each carry current well, so pick the option which names both.", BOTH,
     "Which conducts electricity?", "D", "covering_option"),
    ("Each of the three is a gas giant trait, so the answer is the choice that covers all three.",
     ["Thick atmosphere", "Many moons", "Rings", "All of these"], "What do gas giants have?",
     "D", "covering_option"),
    # round grader19c: a letter followed by its option's own one-letter text is one answer;
    # two letters in a row are still none
    ("Iron's symbol is from ferrum; answer is B) Fe", ["F", "Fe", "I", "Ir"],
     "What is the chemical symbol for iron?", "B", "answer_statement"),
    ("The answer is B D.", ["F", "Fe", "I", "Ir"], "What is the chemical symbol for iron?",
     None, "multiple"),
    # round grader19c: the opening sentence names an option and then its own letter
    ("Mars, choice D.\n\nVenus is hotter, but Mars is the one with the iron-oxide dust.", PLANETS,
     "Which planet is called the Red Planet?", "D", "text_and_letter"),
    # round grader19c: an option's number written in words or with its thousands grouped
    ("A leap year has three hundred sixty-six days.", ["365", "366", "364", "360"],
     "How many days does a leap year have?", "B", "option_mention"),
    ("The sum comes to 2,048 in all.", ["1024", "2048", "4096", "512"],
     "What is 2 to the power 11?", "B", "option_mention"),
    # round grader18c: the one option set in bold amid prose, over the options later sentences
    # contrast it with (not one bold option denied, not two bolded); a bold answer, then a
    # distractor said to be "option D" with no correction between; an "actually" inside a
    # statement about another thing; letters in a row; "it's A or B"; two boxes each under
    # its case; "one of those two"; a numbered step's number; a letter in an answer object;
    # "leaves a ..." a verb and its article
    ("By area the largest organ is the **skin**. The liver is the biggest internal one, and the "
     "lungs hold far more surface inside.", ORGANS, "Which is the largest organ of the body?",
     "D", "bold_option"),
    ("It isn't the **liver**, though many guess it. The skin is the largest organ.", ORGANS,
     "Which is the largest organ of the body?", "D", "option_mention"),
    ("The **heart** pumps and the **lungs** breathe, but the skin is the largest organ.", ORGANS,
     "Which is the largest organ of the body?", "D", "option_mention"),
    ("**A (Heart).**\n\nIt pumps blood round the body. Food is digested in the stomach; that "
     "is option C, the organ of digestion, not of circulation.", ORGANS,
     "Which organ pumps blood?", "A", "bare"),
    ("Sound travels at about **343 m/s** in air at 20 °C; in water it is actually over four "
     "times faster, around 1480 m/s.", ["143 m/s", "343 m/s", "1480 m/s", "3000 m/s"],
     "How fast does sound travel in air at 20 °C?", "B", "bold_option"),
    ("Boiling water at sea level is **212 °F**.", ["90 °C (194 °F)", "100 °C (212 °F)"],
     "At what temperature does water boil at sea level?", "B", "bold_option"),
    ("My answer is B C D.", ORGANS, "Which organ pumps blood?", None, "multiple"),
    ("Hmm, I think it's A or E.", ORGANS, "Which organ pumps blood?", None, "hedge"),
    ("$\\boxed{B}$ if the air is dry, but $\\boxed{C}$ if it is humid.", PLANETS,
     "Which planet is the hottest?", None, "hedge"),
    ("heart or lungs, its one of those two, the heart beats though", ORGANS,
     "Which organ pumps blood?", None, "hedge"),
    ('{"answer": {"letter": "A", "why": "it pumps"}, "not": {"B": "gas exchange"}}', ORGANS,
     "Which organ pumps blood?", "A", "json"),
    # either name of an option "Main (other)" said alone; a leading clause of time whose
    # option the main clause does not state
    ("The thickest part of the bird should read 165 °F.", ["63 °C (145 °F)", "74 °C (165 °F)",
     "82 °C (180 °F)"], "To what temperature should poultry be cooked?", "B", "option_mention"),
    ("Anaphase pulls them apart. After the chromosomes gather at the metaphase plate, the sister "
     "chromatids separate toward the poles.", ["Prophase", "Metaphase", "Anaphase", "Telophase"],
     "During which phase do the sister chromatids separate?", "C", "option_mention"),
    # an answer statement giving the leading words of one option's text
    ("Kaifeng fell in 1127, so the right pick is the Northern Song.", ["The Northern Song "
     "dynasty", "The Southern Song dynasty", "The Tang dynasty"],
     "Which dynasty ruled from Kaifeng?", "A", "option_shortened"),
    ("Skin is the largest organ. The liver leaves a bigger mark on metabolism, and the lungs "
     "the biggest surface.", ORGANS, "Which is the largest organ of the body?", "D",
     "option_mention"),
    # round grader17n: option text in other words ("460 degrees Celsius" is "460 °C"; "the
    # second one;" names a place; a count broken into parts after a colon; options that stem
    # alike told apart as written)
    ("Its surface sits near 460 degrees Celsius.", ["100 °C", "250 °C", "460 °C", "900 °C"],
     "Roughly how hot is the surface of Venus?", "C", "option_mention"),
    ("The hottest of them is the second one; Mercury is closer but cooler.", PLANETS,
     "Which planet is the hottest?", "B", "option_mention"),
    ("A string quartet has four players: two violinists and one violist and one cellist.",
     COUNTS, "A string quartet is made up of how many musicians?", "C", "option_mention"),
    ("SMTPS — SMTP wrapped in TLS — sends mail encrypted from the first byte.",
     ["POP3", "IMAP", "SMTP", "SMTPS"],
     "Which protocol sends mail over a connection encrypted from the start?", "D", "headline"),
    # round grader17m: two answers side by side (boxes with layout between, a letter with its
    # own text then another, a plural subject given two letters); a truncated walk cut on its
    # next heading; an opening of an option's text and its letter; ", which is converted into"
    ("$\\boxed{A}\\quad\\text{or}\\quad\\boxed{C}$", PLANETS,
     "Which planet is closest to the Sun?", None, "hedge"),
    ("My answer: B (Venus) or A (Mercury).", PLANETS, "Which planet is the hottest?", None,
     "hedge"),
    ("So the rocky ones here are A and D.", PLANETS, "Which planet is a gas giant?", None,
     "multiple"),
    ("Venus (B) is hottest. Mercury is closer to the Sun but keeps no atmosphere.", PLANETS,
     "Which planet is the hottest?", "B", "headline"),
    ("The reactor releases nuclear energy, which is converted into heat and then electricity.",
     ENERGIES, "What kind of energy does a reactor release?", "B", "option_mention"),
    # round grader17l: the option the question's subject leads to, then another explained; a
    # denial past "been the"; options of the same terms told apart by their order; a compound
    # said in two words; "leave both open"; a truncated walk through the options
    ("Magnetic flux is measured in webers. The tesla is the unit of flux density.", UNITS,
     "What is the SI unit of magnetic flux?", "B", "option_mention"),
    ("Ottawa is the capital, a compromise between the two. Toronto is the biggest city, but it "
     "has never been the capital.", ["Toronto", "Ottawa", "Montreal", "Vancouver"],
     "Which city is the capital of Canada?", "B", "option_mention"),
    ("In a mammal, the left ventricle pumps blood out to the body, while the right ventricle "
     "pumps it on to the lungs.",
     ["The left ventricle pumps to the body and the right ventricle pumps to the lungs",
      "The right ventricle pumps to the body and the left ventricle pumps to the lungs",
      "Both pump to the lungs", "Both pump to the body"],
     "Which describes the heart's ventricles?", "A", "option_mention"),
    ("Venus keeps its heat under a thick carbon dioxide blanket of cloud.",
     ["Its carbon-dioxide blanket traps heat", "It is closest to the Sun", "It spins fastest",
      "It has no clouds"], "Why is Venus so hot?", "A", "option_mention"),
    ("Venus is hotter, though Mercury is closer; I'd keep both options open.", PLANETS,
     "Which planet is the hottest?", None, "refusal"),
    # round grader17k: two options as alternatives after a copula, "X is possible as well",
    # others' belief, a sentence in brackets, a walk-through of the others, bullets per option,
    # an option under "if", an acronym spelled out, the answer put off until the asker replies
    ("The speed of sound in air is 343 or 1,235 m/s, I forget which unit.",
     ["343", "300", "1,235", "3,000"], "What is the speed of sound in air in m/s?", None, "hedge"),
    ("I'd pick Venus, though Mercury seems plausible as well.", PLANETS,
     "Which planet is the hottest?", None, "hedge"),
    ("The answer is A, Mercury. A common misconception is that the answer is Venus.", PLANETS,
     "Which planet is closest to the Sun?", "A", "answer_statement"),
    ("Answer: A\n\n(Venus, which is option B, is the hottest.)", PLANETS,
     "Which planet is closest to the Sun?", "A", "bare"),
    ("About 96% of Venus's air is carbon dioxide. Nitrogen makes up about 3.5% of the air, "
     "argon about 0.007%, and oxygen almost none.", ["Oxygen", "Nitrogen", "Argon",
     "Carbon dioxide"], "Which gas makes up about 96% of the air on Venus?", "D",
     "option_mention"),
    ("* Venus — 12,104 km\n* Mercury — 4,879 km\n* Mars — 6,779 km\n\nThe smallest is Mercury "
     "(B).", ["Venus", "Mercury", "Mars", "Earth"], "Which planet is the smallest?", "B",
     "option_mention"),
    ("Mars is the red one. If the question were about the hottest planet, Venus would be it.",
     PLANETS, "Which planet is the Red Planet?", "D", "option_mention"),
    ("Mail leaves your client over the Simple Mail Transfer Protocol.",
     ["FTP", "SMTP", "SSH", "DNS"], "Which protocol sends email?", "B", "option_mention"),
    ("Do you mean by mass or by diameter? If you let me know, I'll tell you which planet fits.",
     PLANETS, "Which is the smallest rocky planet?", None, "refusal"),
    # round grader17j: the question's quoted denial, "For comparison, ..."; a cleft's head noun;
    # a participle's means; "later"; bracketed letters side by side; a conditional pair; "both
    # have a case"
    ("403 is Not Allowed here. For comparison, 200 is OK and 404 is Not Found.",
     ["200", "403", "404", "500"], "Which status code does the app use for 'Not Allowed'?", "B",
     "option_mention"),
    ("The cornea does some of the bending and the iris sets how much light enters, but it is "
     "the muscle around the lens that adjusts the focus.",
     ["Iris", "Ciliary muscle", "Pupil", "Optic nerve"],
     "Which part of the eye adjusts its focus onto the retina?", "B", "option_mention"),
    ("Darwin published the theory in 1859, drawing on Charles Lyell's geology.",
     ["Charles Lyell", "Charles Darwin", "Gregor Mendel", "Alfred Wallace"],
     "Who published On the Origin of Species?", "B", "option_mention"),
    ("Answer: (A) (D)", ["Red", "Blue", "Green", "Yellow"], None, None, "multiple"),
    ("If you count dwarf planets, then depending on the list the answer is C or D.", PLANETS,
     None, None, "hedge"),
    ("Options B and C both have a case here.", PLANETS, None, None, "multiple"),
    # round grader17i: a closing paragraph concludes; circumstances, bracketed clauses, agents
    ("A year on Venus is short, the shortest planet year many people think.\n\nThe quickest "
     "orbit is Mercury's.", PLANETS, "Which planet has the shortest year?", "A",
     "option_mention"),
    ("It reaches its closest approach in winter, right after Mars (D) passes opposition.",
     ["Winter", "Spring", "Summer", "Autumn"], None, "A", "option_mention"),
    ("Newton stated it (the law of gravitation is a different one) as the second law.", LAWS,
     None, "B", "option_mention"),
    ("People often say Venus is the hottest. The record is actually held by Venus and shared "
     "by nobody, while Mercury is merely closest.", PLANETS, None, "B", "option_mention"),
    ("**Earth (C)** — the only one with liquid surface water, unlike Mars and Venus.", PLANETS,
     None, "C", "headline"),
    ("The answer is A.\n\nOops, I mean B — Venus.", PLANETS, None, "B", "answer_statement"),
    ("I'd put it as B or D depending on how you count.", PLANETS, None, None, "hedge"),
    ("Mars is the red one. Venus glows brightly, but it doesn't look red at all.", PLANETS,
     "Which planet looks red?", "D", "option_mention"),
    ("Only Earth has liquid oceans — Mars once had water but lost it, unlike Venus.", PLANETS,
     None, "C", "option_mention"),
    ("Mercury orbits closest to the Sun, whereas Mars orbits farther out than Earth.", PLANETS,
     "Which planet orbits closest to the Sun?", "A", "option_mention"),
    ("Only Mars has a red surface; neither is Venus.", PLANETS, None, "D", "option_mention"),
    ("Mercury carries no A, B or C grade in this list; Venus is the answer.", PLANETS, None,
     "B", "option_text"),
    # round grader17g: two answers left open; a concession, an arrow, a ranking; JSON names
    ("Maybe B, maybe D — both are close in size to Earth.", PLANETS, None, None, "refusal"),
    ("I'd have to pick between A and C here.", PLANETS, None, None, "refusal"),
    ('{"chosen_option": "C", "why": "home"}', PLANETS, None, "C", "json"),
    ("It's D, although Venus (B) is also reddish at dusk.", PLANETS,
     "Which planet is called the Red Planet?", "D", "answer_statement"),
    ("Mars has two moons and rusty dust → D.\n\nIf you count dwarf planets, Earth (C) would "
     "still have one.", PLANETS, None, "D", "bare"),
    ("Jupiter is the biggest by far. Saturn is a distant second.",
     ["Jupiter", "Saturn", "Venus", "Mars"], "Which planet is the largest?", "A",
     "option_mention"),
    ("The moon landing of 1969 used a computer and a lot of courage.",
     ["AND", "OR", "NOT", "XOR"], None, None, "none"),
    ("Only Ω is a unit here.", ["Ω", "m", "s", "kg"], None, "A", "option_mention"),
    ("α and β name angles. π is that ratio.", ["α", "β", "π", "σ"], None, "C", "option_mention"),
    ("| Option | Verdict |\n|---|---|\n| A. Mercury | ✗ — closest |\n| B. Venus | ✓ |\n"
     "| C. Earth | ✗ — third |\n| D. Mars | ✗ — fourth |", PLANETS, None, "B", "marked"),
    ("| Planet | Rocky? |\n|---|---|\n| A. Mercury | ✓ |\n| D. Mars | ✓ |", PLANETS, None, None,
     "multiple"),
    ("Mercury ✗, Venus ✗, Earth ✓, Mars ✗ → C", PLANETS, None, "C", "bare"),
    ("You want Venus. Mercury is closer to the Sun, and Mars is smaller.", PLANETS, None, "B",
     "headline"),
    ("The inner system is mostly Venus by mass here — with Mercury or Mars far smaller.",
     PLANETS, None, "B", "option_mention"),
    ("Likely C, but B could also be argued, as GROUP BY is where rows get grouped.",
     ["WHERE", "GROUP BY", "HAVING", "ORDER BY"], None, None, "hedge"),
    # round grader17d: the option a sentence's conclusion names, of several in its working
    ("Duplicates collapse, leaving {2, 3, 4}, so len returns 3.", NUMBERS, None, "B",
     "option_mention"),
    ("Flux in webers per ampere has its own name: the henry.", UNITS,
     "What is the SI unit of inductance?", "C", "option_mention"),
    ("Mercury, Venus and Earth are rocky. The one that isn't closest is Mars.", PLANETS, None,
     "D", "option_text"),
    ("Venus looks brightest, so B. No wait, it asks for the smallest. A.", PLANETS, None, "A",
     "bare"),
    ("Mercury and Venus lack moons, Earth has one. Ruling out A, B and C leaves D.", PLANETS,
     None, "D", "answer_statement"),
    ("If it means by mass, then Earth (C); if by volume, then Mars (D).", PLANETS, None, None,
     "hedge"),
    ("Both Venus and Mars are neighbours, so the answer is Venus and Mars.", PLANETS, None, None,
     "multiple"),
    # round grader17e: two letters offered; others explained away in brackets
    ("Honestly it is either A or D; I would not bet on one.", ["AND", "OR", "NOT", "XOR"],
     None, None, "hedge"),
    ("Mars is the only one with two moons (Mercury and Venus have none, Earth one).",
     PLANETS, "Which planet has two moons?", "D", "option_mention"),
    # a sentence that only points at an option
    ("Mars is red because of iron oxide. The fourth choice.", PLANETS, None, "D", "ordinal"),
    ("Venus is hottest because of its CO2. That's option two.", PLANETS, None, "B", "ordinal"),
    ("The answer is option three, our own planet.", PLANETS, None, "C", "ordinal"),
    # "the third one is ..." names the option
    ("The third one is the only planet with liquid oceans.", PLANETS, None, "C",
     "option_mention"),
    # "the third" alone among ordinal options sharing a noun
    ("Not the first law but the third explains rocket thrust.", LAWS, None, "C",
     "option_mention"),
    # several options endorsed, or an option whose text is the list
    ("Mercury and Venus both lack moons. A and B are both correct.", PLANETS, None, None,
     "multiple"),
    ("Iron and copper conduct well. Both A and B are correct.", BOTH, None, "D", "option_text"),
    # a second option entertained in the same sentence
    ("The answer is probably D, though it could also be C.", PLANETS, None, None, "hedge"),
    ("I'd go with A, or possibly B.", PLANETS, None, None, "hedge"),
    ("The answer is D, but it might be tempting to pick C.", PLANETS, None, "D",
     "answer_statement"),
    # wavering between option texts, before any copula can decide
    ("It could be Mars or Venus; I am honestly unsure.", PLANETS, None, None, "hedge"),
    # a list of options chooses none; a list beside the stated one does not hide it
    ("The inner planets are Mercury, Venus, Earth and Mars.", PLANETS,
     "Which planet is closest to the Sun?", None, "multiple"),
    ("Mercury is the closest, while Venus, Earth and Mars lie farther out.", PLANETS,
     "Which planet is closest to the Sun?", "A", "option_mention"),
    # declining by memory
    ("I don't remember which planet that is.", PLANETS, None, None, "refusal"),
    # a JSON field the question asks for
    ('{"planet": "Mars", "moons": 2}', PLANETS, "Which planet has two moons?", "D", "json"),
    # corrections that name the replacement
    ("B. No wait — D.", PLANETS, None, "D", "answer_statement"),
    ("Venus. Scratch that: Venus has no moons. Mars.", PLANETS, None, "D", "bare"),
    ("John Adams — sorry, I mean George Washington.", PRESIDENTS,
     "Who was the first US president?", "B", "option_mention"),
    # ranked below what the question asks for
    ("Washington was first; Adams was the second.", PRESIDENTS,
     "Who was the first US president?", "B", "option_mention"),
    # a short surname
    # a word of an option inside another name, or the question's own word, names no option
    ("With 1.4 billion people, India is South Asia's most populous country.",
     ["Pakistan", "India", "South Korea", "Bangladesh"], None, "B", "option_mention"),
    ("The Nile is Africa's longest river.", ["Congo", "Nile", "Niger", "Africa Orange"],
     "Which river is the longest in Africa?", "B", "option_mention"),
    ("That poem is Poe's.", WRITERS, "Who wrote 'The Raven'?", "A", "option_mention"),
    # the question's counted noun decides between counts
    ("A violin has four strings and two f-holes.", COUNTS,
     "How many strings does a violin have?", "C", "option_mention"),
    # an option made of the question's own words is the question echoed
    ("A class groups each function with its data.", ["Variable", "Function", "Loop", "Class"],
     "Which construct groups a function and its data together?", "D", "option_mention"),
    # a task list's ticked box; a ticked line without letters
    ("- [ ] A. Mercury\n- [ ] B. Venus\n- [x] C. Earth\n- [ ] D. Mars", PLANETS, None, "C",
     "marked"),
    ("- Mercury ✗\n- Venus ✗\n- Earth ✓\n- Mars ✗", PLANETS, None, "C", "marked"),
]

MATH_RULES = [
    # round grader18m: a value in a prefixed form of the unit asked in, in that unit
    ("W = Fd = 50 × 30 = 1 500 J.\n\nSo the work done is 1.5 kJ.",
     "A 50 N force pushes a crate 30 m. How much work is done, in joules?", "1500",
     "last_statement"),
    ("The wire is 2.5 km long.", "How long is the wire in metres?", "2500", "last_statement"),
    # round grader18m, second pass: the clause with the question's participle; a qualifier
    # the question uses ("the parallel slope"), not a name inside "with that slope"; the
    # general solution beside the question's range; another base; code fenced before prose
    ("Of 10 apples, 4 are eaten.\n\nSo two fifths of the apples are eaten, and 6 remain.",
     "A bowl has 10 apples and 4 are eaten. What fraction of the apples is eaten?",
     "\\frac{2}{5}", "last_statement"),
    ("So the normal slope is 3/2. A line with that slope through (1, 1) is y = 1.5x − 0.5.",
     "Find the slope of the line perpendicular to 2x + 3y = 6.", "3/2", "last_statement"),
    ("tan x = 1 at two angles in range.\n\nx = π/4 or x = 5π/4.\n\nThe general solution is "
     "x = π/4 + kπ.", "Solve tan x = 1 for 0 ≤ x < 2π.", "\\{\\pi /4, 5\\pi /4\\}",
     "last_statement"),
    ("16 + 8 + 2 = 26.\n\n11010₂ = 26 in decimal.\n\nSo in octal it is 32, and in hexadecimal 1A.",
     "Convert 11010₂ to base 10.", "26", "last_statement"),
    ("3 · 13 = 39.\n\n```python\n>>> 3 * 13\n39\n>>> 3 * 14\n42\n```\n\nThe product is 39.",
     "What is 3 times 13?", "39", "last_statement"),
    # round grader18m: the statement of the asked quantity, not a trailing one about another
    # (the other / next one, a rounding not asked, what could be done, the Nth item of a
    # count, |x|, a check with an adjective, a value put in to test it)
    ("A = 30°.\n\nThe other acute angle is 60°.",
     "In a right triangle, sin A = 0.5. Find A in degrees.", "30", "last_statement"),
    ("0.07 × 2300 = 161.\n\nRounded to the nearest hundred that is 200.",
     "What is 7% of 2,300?", "161", "last_statement"),
    ("0.07 × 2300 = 161.\n\nRounded to the nearest hundred that is 200.",
     "What is 7% of 2,300, rounded to the nearest hundred?", "200", "last_statement"),
    ("The largest area is 100 m², for a 10 m square. With a circle of the same perimeter you "
     "could enclose about 127 m².",
     "What is the largest area a rectangle with perimeter 40 m can have, in m²?", "100",
     "last_statement"),
    ("n(3n + 1)/2 = 155 gives n = 10.\n\nSo 10 terms are needed. The 10th term is 29.",
     "How many terms of 2, 5, 8, … are needed for a sum of 155?", "10", "last_statement"),
    ("x² = 81, so x = ±9.\n\nSo |x| = 9, and both square to 81.", "Solve x² = 81.", "\\pm 9",
     "last_statement"),
    ("2x > 6, so x > 3.\n\nQuick check: x = 4 gives 9 > 7.", "Solve 2x + 1 > 7.",
     "(3, \\infty)", "last_statement"),
    ("5x ≤ 15, so x ≤ 3.\n\nx = 4 gives 18 ≤ 13, false.", "Solve 5x − 2 ≤ 13.",
     "(-\\infty, 3]", "last_statement"),
    # values in words; the asked quantity by its sign, symbol or counted noun
    ("Dividing through by n gives 3/5 in the limit.\n\nThe limit is three fifths.\n\nAt n = 10 "
     "the ratio is 0.62.", "Evaluate lim_{n→∞} (3n + 1)/(5n).", "\\frac{3}{5}", "last_statement"),
    ("cot 2β = (cot²β − 1)/(2 cot β) = 3/4 ... no sign slip: the value is negative.\n\nSo cot 2β "
     "is minus five twelfths.", "If cot β = 2/3, find cot 2β.", "-\\frac{5}{12}",
     "last_statement"),
    ("The integral is 9.\n\nFrom 0 to 6 the integral of x² would be 72.", "Evaluate ∫₀³ x² dx.",
     "9", "last_statement"),
    ("210 = 2 · 3 · 5 · 7.\n\n210 has 4 factors of that kind. By the same count, 2310 has 5.",
     "How many distinct prime factors does 210 have?", "4", "last_statement"),
    ("$$\\tan 15^\\circ = 2 - \\sqrt{3}$$\n\nLikewise, tan 75° = 2 + √3.",
     "Find the exact value of tan 15°.", "2 - \\sqrt{3}", "last_statement"),
    ("S = 4/(1 − 1/2) = 8\n\nThe first partial sums are 4, 6, 7, 7.5.",
     "Find the sum of the infinite series 4 + 2 + 1 + ….", "8", "last_statement"),
    ("a + b = 9 by Vieta.\n\nThe product ab is 20, and the roots are 4 and 5.",
     "If a and b are the roots of x² − 9x + 20 = 0, find a + b.", "9", "last_statement"),
    ("a = 3, and b = 4, so a + b is 7.", "Solve 2^a = 8 and 2^b = 16. What is a + b?", "7",
     "last_statement"),
    ("The LCM is 12. Their greatest common divisor is 2, or 12 divided by 6.",
     "Find the least common multiple of 4 and 6.", "12", "last_statement"),
    ("Since (x − 1)² ≥ 0, the maximum value is 5, reached at x = 1.\n\nFor the graph: it opens "
     "downward, its axis is x = 1, and it meets the y-axis at 4.",
     "Find the maximum value of f(x) = 5 − (x − 1)².", "5", "last_statement"),
    ("0.000071 = 7.1 × 10⁻⁵.\n\nThat is 71 millionths, about 0.007%.",
     "Write 0.000071 in scientific notation.", "7.1\\times 10^{-5}", "last_statement"),
    # a solved inequality's relation or interval; the asked unit or count after a dash; a
    # table row named by the asked quantity; a value before its reason; the question's own
    # numbers joined by "or"
    ("−2x < −6, so dividing by −2 flips it:\n\nx > 3\n\nSo the smallest whole number that works "
     "is 4.", "Solve 9 − 2x < 3.", "(3, \\infty)", "last_statement"),
    ("3x ≥ 15.\n\nSo x is at least 5 — that is, x ≥ 5, or [5, ∞).", "Solve 3x − 4 ≥ 11.",
     "[5, \\infty)", "last_statement"),
    ("It is 210 minutes — three and a half hours.", "How many hours is 210 minutes?",
     "\\frac{7}{2}", "last_statement"),
    ("| Item | $ |\n|---|---|\n| Meal | 40.00 |\n| **Tax** | **2.00** |\n| Total | 42.00 |",
     "A meal costs $40 and the tax is 5%. How much is the tax in dollars?", "2.00", "table"),
    ("The remainder is zero: 91 = 7 × 13. Dividing 92 by 7 leaves 1.",
     "What is the remainder when 91 is divided by 7?", "0", "last_statement"),
    ("12 of the 36 numbers qualify.\n\nSo one third of them are divisible by 4 or 6.",
     "What fraction of the integers from 1 to 36 are divisible by 4 or by 6?", "\\frac{1}{3}",
     "last_statement"),
    ("R = 12/3.\n\n**Final Answer:** `4 Ω`",
     "A 12 V source drives 3 A. What is the resistance in ohms?", "4", "answer_statement"),
    # no single answer: two boxes as a question, asking back, a hint, an empty box, the task
    # or the question told again
    ("$h(1) = \\boxed{4}$, or is it $\\boxed{6}$? I can't settle it.",
     "Find h(1) if h(x) = x^2 + 3.", None, "hedge"),
    ("Do you mean the area in square centimetres or square inches? The sides could be in "
     "either unit.", "What is the area of the triangle with sides 3, 4, 5?", None,
     "clarification"),
    ("Hint: both are divisible by 6, giving 3 on top. See if you can complete the rest "
     "yourself.", "Simplify 18/24.", None, "left_to_reader"),
    ("12 × 13 = 12 × 10 + 12 × 3.\n\nFinal result: $\\boxed{}$", "What is 12 × 13?", None,
     "empty_answer"),
    ("We need to find the period of y = cos(3x).", "What is the period of y = cos(3x)?", None,
     "none"),
    ("Let me restate the problem: Write 14/21 in lowest terms.", "Write 14/21 in lowest terms.",
     None, "none"),
    # round grader17n: after the committing statement, a passed check ("as required"), the
    # answer in mixed units ("That is ..."), a property ("It has 6 divisors"), a what-if; the
    # asked product "p·q"; "the sum of the first 8 terms" beside "the 8th term"; the asked
    # unit after "or"; "−3%, i.e. a 3% drop"; opening working ("6x < 18" then "x < 3", and
    # "50 → 60 → 45")
    ("p + 6 = 15, so p = 9. The number is nine. Nine plus 6 is 15, as required.",
     "A number plus 6 is 15. What is the number?", "9", "last_statement"),
    ("100 − 25 = 75. She has 75 stamps left. That is 6 full pages and 3 loose stamps.",
     "Mia had 100 stamps and gave away 25. How many are left?", "75",
     "last_statement"),
    ("24 = 2³·3 and 36 = 2²·3², so the GCD is 12. It has 6 divisors.",
     "What is the greatest common divisor of 24 and 36?", "12", "last_statement"),
    ("T = mg = 4 × 10 = 40 N.\n\nIf a 3 kg mass is added, the rope carries 70 N.",
     "A 4 kg mass hangs from a rope. Taking g = 10 m/s², what force does the rope exert, in "
     "newtons?", "40", "last_statement"),
    ("So p = 6 and q = 2.\n\n$$p \\cdot q = 12$$\n\n(And p/q = 3, should you want it.)",
     "If p + q = 8 and p − q = 4, what is p·q?", "12", "last_statement"),
    ("d = 3, so the 8th term is 2 + 7·3 = 23. The sum of the first 8 terms is 4(2 + 23) = 100.",
     "An arithmetic sequence begins 2, 5, 8. What is the 8th term?", "23", "last_statement"),
    ("1.25 × 60 = 75. That is one and a quarter hours, or 75 minutes.",
     "Convert 1.25 hours to minutes.", "75", "last_statement"),
    ("194/200 = 0.97. The change is −3%, i.e. a 3% drop.",
     "Sales went from 200 to 194. What is the percentage change?", "-3%", "last_statement"),
    ("6x < 18\nx < 3\n\nThe solution set is (−∞, 3).", "Solve 6x + 1 < 19.", "(-\\infty , 3)",
     "last_statement"),
    # round grader17n's second pass: the value in brackets in the asked unit's symbol
    ("E = P·t = 1.2 × 1000.\n\nThe energy is 1.2 kJ (1200 J).",
     "A 1.2 kW heater runs for one second. How much energy does it use, in joules?", "1200",
     "last_statement"),
    ("50 → 60 → 45.\n\nNet change: −10%.",
     "A price of 50 rises 20% and then falls 25%. What is the net percentage change?", "-10%",
     "last_statement"),
    # round grader17m: boxes with layout between; two values then "not sure which"; the
    # question's operation names the asked quantity; parts in words past twelve; "their
    # product" after the roots; a failed check (7 ≠ 9); the unit the question asks in
    ("$\\boxed{5} \\qquad \\text{or} \\qquad \\boxed{-5}$", "Solve $x^3 = 125$.", None,
     "hedge"),
    ("The answer is x = 1 or x = -1, but I'm not sure which one.",
     "Solve $x^2 - 2x + 1 = 0$.", None, "hedge"),
    ("Coefficients: 3 × 2 = 6; powers: 10² × 10⁻⁴ = 10⁻².\n\nSo the product is 6 × 10⁻², that "
     "is 0.06.", "Compute $3 \\times 10^{2} \\times 2 \\times 10^{-4}$.", "0.06", "last_statement"),
    ("It comes to eleven thirtieths.", "Compute $\\frac{1}{5} + \\frac{1}{6}$.",
     "\\frac{11}{30}", "last_statement"),
    ("$$x = 6 \\quad\\text{or}\\quad x = -6.$$\n\nTheir product is $-36$.",
     "Find all real solutions of $x^2 = 36$.", "\\{6, -6\\}", "last_statement"),
    ("2x = 8, so x = 4. I had tried x = 3 first, but 2(3) + 1 = 7 ≠ 9.", "Solve $2x + 1 = 9$.",
     "4", "last_statement"),
    ("I = V/R = 12/4 = 3.\n\nThe bulb draws 3 amperes, and it gives off P = VI = 36 W.",
     "A 12 V supply drives a 4-ohm bulb. What is the current in amperes?", "3",
     "last_statement"),
    # round grader17l: the question's last "give the" narrows it, the complement, the question's
    # own "would", a function's argument, a mixed-unit restatement, each vs all, the excluded
    # case, two boxes side by side, a JSON field of the asked head noun
    ("The apex's x-coordinate is 2. So the apex is the point (2, 7).",
     "Find the apex of $y = -x^2 + 4x + 3$. Give only the $x$-coordinate.", "2",
     "last_statement"),
    ("P(six) = 1/6. The probability of not rolling a six is 5/6.",
     "A die is rolled. What is the probability of a six?", "1/6", "last_statement"),
    ("Pipe B alone fills 1/10 of the pool per hour, so it would take 10 hours by itself.",
     "Pipes A and B fill a pool in 5 hours; A alone takes 10. How long would B take alone?",
     "10", "last_statement"),
    ("So $n = 1000$. Then $\\log_{10} n = 3$.", "If $\\log_{10} n = 3$, what is $n$?", "1000",
     "last_statement"),
    ("The flight lasts 2.25 hours, that is 2 hours and 15 minutes.",
     "A 1,800 km flight at 800 km/h: how long is it, in hours?", "2.25", "last_statement"),
    ("Each guest pays $12, and the party pays $96 in total.",
     "Eight guests split a $96 bill. How much does each guest pay?", "12", "last_statement"),
    ("The simplified form is $y + 1$. At $y = 1$ the fraction is undefined even though "
     "$y + 1 = 2$ there.",
     "Simplify $\\frac{y^2 - 1}{y - 1}$ for $y \\neq 1$.", "y + 1", "last_statement"),
    ("\\boxed{12}\n\\boxed{21}", "What is $3 \\times 7$?", None, "hedge"),
    ('{"grams_of_sugar": 150, "cakes": 6}', "A cake takes 25 g of sugar. How many grams of sugar "
     "do 6 cakes take?", "150", "json"),
    # round grader17k: two values offered for one, the same value in another form, a moment of
    # its own after the answer, the question's word in another form, "What is $b$?"
    ("Roughly 12 or 13 metres, I'd guess.", "How tall is the tree in metres?", None, "hedge"),
    ("It's 0.5, or 50% if you prefer.", "What is the probability of heads?", "0.5",
     "last_statement"),
    ("The tank is full after 30 minutes. After 10 minutes it holds 200 litres.",
     "A tank fills at 20 litres per minute and holds 600 litres. How many minutes to fill it?",
     "30", "last_statement"),
    ("Year 1: $1,100. Year 2: $1,210.\n\nThe investment is worth $1,210 after two years. "
     "That's $210 of interest in total.",
     "$1,000 is invested at 10% interest compounded annually. What is it worth after 2 years, "
     "in dollars?", "1210", "last_statement"),
    ("So $b = 4$, and then $a = 1$.", "Given $a + b = 5$ and $b - a = 3$. What is $b$?", "4",
     "last_statement"),
    # round grader17j: the question's own case, the asked function or TeX set equal, "needs a
    # N" before a purpose clause's what-if, a subject's own case in words, a check opening
    # "Testing", the question's expression as a headline, two values for one, a JSON list of
    # roots, a clause opening on a name
    ("For n = 8: 8 × 9 / 2 = 36. The 8th triangular number's square is 1296.",
     "What is the sum of the first 8 positive integers?", "36", "last_statement"),
    # the question's "\\theta" as JSON read with one backslash leaves it: a tab, then "heta"
    ("$\\sin\\theta = \\frac{12}{13}$. Then $\\tan\\theta = \\frac{12}{5}$.",
     "If $\\cos\theta = \\frac{5}{13}$ and $\theta$ is acute, what is $\\sin\theta$?",
     "\\frac{12}{13}", "last_statement"),
    ("150 = 1 × 90 + 60, 90 = 1 × 60 + 30 and 60 = 2 × 30 + 0, so the remainders end with "
     "gcd(90, 150) = 30. The least common multiple is 90 × 150 / 30 = 450.",
     "What is the greatest common divisor of 90 and 150?", "30", "last_statement"),
    ("He needs a 75 on the third test. To average 72 he would need 81.",
     "A student scored 62 and 73 on two tests. What score does he need on the third to average "
     "exactly 70?", "75", "last_statement"),
    ("$$P = \\frac{1}{4}$$\n\nThe probability of at least one head is $\\frac{3}{4}$.",
     "Two fair coins are tossed. What is the probability of two heads?", "\\frac{1}{4}",
     "last_statement"),
    ("Solution: $-1 \\le x \\le 4$.\n\nTesting $x = 5$: $6 > 0$, outside as expected.",
     "Solve $x^2 - 3x - 4 \\le 0$.", "[-1, 4]", "last_statement"),
    ("250 - 75\n\nTake 50 off, then 25 more: 250 - 75 = 175.", "What is $250 - 75$?", "175",
     "last_statement"),
    ("The answer is $x = 5$ or $x = 6$.", "Solve $x^2 = 25$ for positive $x$.", None, "hedge"),
    ("Both 2.71 and 2.72 appear in different tables.", "Round 2.718 to two decimal places.",
     None, "hedge"),
    ('{"roots": [-2, 2]}', "Solve $x^2 - 4 = 0$.", "-2, 2", "json"),
    ("Let c be the child's age: c + 4c = 40, so c = 8 and Priya is 32.",
     "Priya is 4 times as old as her child, and together they are 40. How old is Priya?", "32",
     "last_statement"),
    # round grader17i: the asked quantity in the question's words (TeX, possessive, hyphen,
    # "by what percent", the chain's result noun); another unit or object after "i.e."; a
    # remark; the other end of a range; the asked verb's clause; one linear equation's root
    ("a = 5, and a + b = 8.", "If $a + b = 8$ and $b = 3$, what is $a$?", "5", "last_statement"),
    ("Ben's total is $42. That's $12 more than last week.", "What is Ben's total in dollars?",
     "42", "last_statement"),
    ("It has $y$-intercept 4; the slope is 2.", "Find the $y$-intercept of $y = 2x + 4$.", "4",
     "last_statement"),
    ("It rose by 25%. Again, it would reach 156.", "A price went from 100 to 125. By what "
     "percent did it rise?", "25%", "last_statement"),
    ("2 h × 60 min/h = 120 minutes. That's 7200 seconds, if you like.",
     "How many minutes are in 2 hours?", "120", "last_statement"),
    ("The trip lasts 150 minutes, which is 2 hours and 30 minutes.",
     "How long is the trip in minutes?", "150", "last_statement"),
    ("Final price: $50. Interestingly, 1.25 × 0.8 = 1.", "What is the final price in dollars?",
     "50", "last_statement"),
    ("The longest side is 12; the shortest is 5.", "What is the longest side?", "12",
     "last_statement"),
    ("He earns $60 in interest, so his balance is $1,060.",
     "How much interest does he earn, in dollars?", "60", "last_statement"),
    ("x = 2 or x = -2", "Solve $3x + 1 = 7$.", None, "hedge"),
    ("There are two reasonable answers here, 3 or -3.", "What is $\\sqrt{9}$?", None, "hedge"),
    ("Find the 5th term of the sequence 1, 3, 5, ...",
     "What is the 5th term of the sequence 1, 3, 5, ...?", None, "none"),
    ("So the total is seven tenths, 7/10.", "Compute 1/2 + 1/5.", "\\frac{7}{10}",
     "last_statement"),
    # round grader17g: the question's own object restated commits; a rejected root; a list of
    # values, or two left open, for one quantity; a count in words; digits after words
    ("g'(x) = 6x, so g'(3) = 18. The tangent there is y = 18x - 27.",
     "Let g(x) = 3x^2. Find g'(3).", "18", "last_statement"),
    ("54 km/h = 15 m/s. Going back, multiply by 3.6.", "Convert 54 km/h to metres per second.",
     "15", "last_statement"),
    ("(x² − 1)/(x − 1) = x + 1 (for x ≠ 1).", "Simplify (x^2 - 1)/(x - 1).", "x + 1",
     "last_statement"),
    ("So the daughter is 9 years old, and her mother is 36.",
     "A mother is four times as old as her daughter. How old is her daughter?", "9",
     "last_statement"),
    ("So an octahedron has eight faces. It has 12 edges and 6 vertices.",
     "How many faces does an octahedron have?", "8", "last_statement"),
    ("You'll need 3 1/2 cups of milk. If you only have a 1/4 cup, that's 14 scoops.",
     "A batch needs 1/2 cup of milk. How many cups do 7 batches need?", "\\frac{7}{2}",
     "last_statement"),
    ("x = 4 or x = -3. Only x = 4 works; x = -3 is extraneous.", "Solve sqrt(x + 12) = x.", "4",
     "last_statement"),
    ("So the car travels 150 m. Without the ½ you'd get 300 m.",
     "A car accelerates from rest at 3 m/s² for 10 s. How far does it go?", "150",
     "last_statement"),
    ("Final answer: 45, 135", "What is each interior angle of a regular octagon, in degrees?",
     None, "hedge"),
    ("It rounds to 2.4 or 2.5 — the 5 makes it a tie.", "Round 2.45 to the nearest tenth.", None,
     "hedge"),
    ("x = 3 by one method, or x = 4 by another — either could be right.", "Solve 2x - 1 = 5.",
     None, "refusal"),
    ("Answer: two fifths (2/5).", "Express 0.4 as a fraction in lowest terms.", "2/5",
     "answer_statement"),
    ("x = √(64/9) = 8/3, or x = −8/3. In decimals, ±2.67.", "Solve x^2 = 64/9.",
     "\\{8/3, -8/3\\}", "last_statement"),
    # round grader17f: the statement that commits to the asked quantity; after it, commentary
    ("The LCM is 2²·3² = 36. The GCD comes out of the same factorisations as 6.",
     "What is the least common multiple of 12 and 18?", "36", "last_statement"),
    ("So dy/dx = 2/x. At x = 1 the slope is therefore 2.", "Find dy/dx if y = ln(x^2).",
     "2/x", "last_statement"),
    ("Each friend pays **$32.20**. With a 10% tip added, each share comes to $35.42.",
     "Three friends split a $96.60 bill equally. How much does each pay?", "32.20",
     "last_statement"),
    ("(x − 2)(x + 5) = x² + 3x − 10. Set to zero, it has roots x = 2 and x = −5.",
     "Expand (x - 2)(x + 5).", "x^{2} + 3x - 10", "last_statement"),
    ("The spring stores 2 J. Stretching it to 0.2 m quadruples that to 8 J.",
     "A spring with constant 400 N/m is stretched 0.1 m. How much elastic energy does it store?",
     "2", "last_statement"),
    ("So x is 6. Then 3 times 6 is 18 and minus 7 is 11.", "Solve 3x - 7 = 11.", "6",
     "last_statement"),
    ("The area is 15. Hold on, the base is 8, so the area is 20.",
     "What is the area of a triangle with base 8 and height 5?", "20", "last_statement"),
    ("The area is **21**. Its perimeter is 2(7 + 3) = 20.",
     "What is the perimeter of a 7 by 3 rectangle?", "20", "last_statement"),
    ("So the sound takes 3 seconds, i.e. 3000 milliseconds.",
     "How long, in seconds, does sound take to travel 1,020 m at 340 m/s?", "3",
     "last_statement"),
    ("Thus y = 15 when x = 6 (and k = 2.5).",
     "If y varies directly with x and y = 10 when x = 4, find y when x = 6.", "15",
     "last_statement"),
    ("Solve 5x - 2 = 13. Solve 5x - 2 = 13. Solve 5x - 2 = 13.", "Solve 5x - 2 = 13.", None,
     "none"),
    # a price in a table cell or a box
    ("| Item | Cost |\n|---|---|\n| Pen | $3 |\n| **Total** | **$12** |", None, "12", "table"),
    ("So the bill is \\boxed{\\$45}.", None, "45", "boxed"),
    # a JSON field the question asks for
    ('{"volume": 27, "surface": 54}', "What is the volume of a cube of side 3?", "27", "json"),
    # "that's X" restates; an aside in words is not the conclusion
    ("9/12 = 3/4... reduced, that's 3/4.", None, "3/4", "last_statement"),
    ("The result is 14 (doubling 5, then adding 4).", None, "14", "last_statement"),
    # the question's condition, quantity and unknown decide between values
    ("y = 9 when x = 3, and y = 11 when x = 4.", "If y = 2x + 3, what is y when x = 3?", "9",
     "last_statement"),
    ("For t = 2, d = 30; for t = 3, d = 45.", "How far has it gone at t = 2?", "30",
     "last_statement"),
    ("Its area is 20 and its perimeter is 18.", "What is the perimeter of a 5 by 4 rectangle?",
     "18", "last_statement"),
    ("Adding the equations, x = 4 and y = 1.", "What is the value of x if x + y = 5 and "
     "x - y = 3?", "4", "last_statement"),
    # a recap of the givens or the working after the answer
    ("Lee has 17 cards left. He had 25 and lost 8.", "Lee had 25 cards and lost 8. How many "
     "are left?", "17", "last_statement"),
    ("That's 180 seconds. I multiplied 3 by 60.", "How many seconds are in 3 minutes?", "180",
     "last_statement"),
    # hedges: a second value entertained, a range, values put as questions
    ("It's probably 30, but it could be 32.", None, None, "hedge"),
    ("Somewhere around 40 to 50.", None, None, "hedge"),
    ("16? 18? Hard to say.", None, None, "refusal"),
    # an echo of the question, Unicode math and all
    ("Compute √49.", "Compute \\sqrt{49}.", None, "none"),
    # counts in words, ratios, an opening gerund clause
    ("A spider has eight legs.", "How many legs does a spider have?", "8", "last_statement"),
    ("Dividing by 5, the ratio is 2:3.", None, "2:3", "last_statement"),
    ("Subtracting 2, x > 5.", None, "(5, \\infty)", "last_statement"),
    # commentary after the committed value: a comparison, a substitution back, a passed check
    ("a = 5 m/s². Its speed after 2 s, for comparison, would be 10 m/s.",
     "What is the acceleration in m/s²?", "5", "last_statement"),
    ("z = 6. Substituting back, w = 12 - 6 = 6 and y = 2.", "What is z?", "6", "last_statement"),
    ("2 h = 7,200 s.\n\nSanity check: 60 × 60 = 3,600, so 2 hours is 7,200 + 0 = 7,200 s... "
     "wait, 3,600 + 3,600 = 7,200. ✓", "How many seconds are in 2 hours?", "7200",
     "last_statement"),
    # units after the value, a restatement in the asked form, a property is no restatement
    ("Speed = 240/7 km/h.", None, "240/7", "last_statement"),
    ("30/120 = 0.25, i.e. a 25% share.", "What percentage of 120 is 30?", "25%",
     "last_statement"),
    ("f'(x) = 2x + 2, which is zero at x = -1.", "Differentiate x^2 + 2x.", "2x + 2",
     "last_statement"),
    # numbers in words: a hyphenated fraction, "lands at", a count marked as the total
    ("The answer is three-fifths of the class.", None, "\\frac{3}{5}", "answer_statement"),
    ("Going down 9 from 2 lands at minus seven.", "What is 2 - 9?", "-7", "last_statement"),
    ("One dot, two dots and three dots on three faces: six faces in total.",
     "How many faces does a die have?", "6", "last_statement"),
    # solution sets: "giving the set", a union of rays, "Both a and b are" when several are asked
    ("x² = 25, giving the solution set {-5, 5}.", None, "\\{-5, 5\\}", "last_statement"),
    ("So x < -1 or x > 1.", None, "(-\\infty, -1) \\cup (1, \\infty)", "last_statement"),
    ("Both 7 and -7 are 7 units from zero.", "Which numbers have absolute value 7?", "7, -7",
     "last_statement"),
    ("Both 7 and -7 are possible.", "What is 49 divided by 7?", None, "hedge"),
    # the working's last step: arrows, a point after "is at", a bold lead then the why
    ("2x - 1 > 5 → 2x > 6 → x > 3.", None, "(3, \\infty)", "headline"),
    ("It is at (2, -1), and it is a minimum.", None, "(2, -1)", "last_statement"),
    ("**1,440 minutes.** A day has 24 hours of 60 minutes.", "How many minutes are in a day?",
     "1440", "headline"),
    ("m = 2,500 g", None, "2500", "last_statement"),
    # no single answer: boxes joined by "or", a range, the choice handed back, a date in prose
    ("$\\boxed{12}$ or $\\boxed{15}$", None, None, "hedge"),
    ("Roughly from 5 to 6 days.", None, None, "hedge"),
    ("If monthly, $12; if yearly, $140. I'll leave it to you.", None, None, "refusal"),
    ("Napier published logarithms in 1614.", "Compute \\log_2 8.", None, "none"),
    ("The Battle of Hastings was fought in 1066.", "In what year was the Battle of Hastings?",
     "1066", "last_number"),
    # round grader17d: the clause naming what the question asks for; commentary after it
    ("Half of 90 is 45, so the original price was $90, which means the sale saved $45.",
     "What was the original price in dollars?", "90", "last_statement"),
    ("Each side is 8, so the square's area is 64 and its perimeter is 32.",
     "What is the area of the square?", "64", "last_statement"),
    ("The angles add up to 540°, so each interior angle of the regular pentagon is 108°.",
     "What is the sum of the interior angles of a pentagon?", "540", "last_statement"),
    ("m = 10/5 = 2, so the line rises 10 units over 5.", "Find the slope of the line.", "2",
     "last_statement"),
    ("q reaches its maximum value of 9 at x = 3.", "What is the maximum value of q(x)?", "9",
     "last_statement"),
    ("So k = 6 (check: 6/2 + 1 = 4 ✓).", "Solve for k: k/2 + 1 = 4.", "6", "last_statement"),
    ("The roots are 1 and 4; their product 4 matches c/a.", "Solve x^2 - 5x + 4 = 0.", "1 and 4",
     "last_statement"),
    ("That is 3! = 6 orders, not 3² = 9.", "In how many ways can 3 books be ordered?", "6",
     "last_statement"),
    ("The multiples are 10, 20 and 30. The answers are 10 and 20.",
     "What is the least common multiple of 5 and 10?", None, "hedge"),
    ("20% of 90 is ...", "What is 20% of 90?", None, "hedge"),
    ("If ^ is a power: $\\boxed{8}$. If it is XOR: 2 XOR 3 = 1, so $\\boxed{1}$.", None, None,
     "hedge"),
    # round grader17e: remarks after the committed statement; the asked unit and quantity
    ("7x < 21, so x < 3. Any x below 3 works, e.g. x = 0 gives 0 < 21.", "Solve 7x < 21.",
     "(-\\infty, 3)", "last_statement"),
    ("z² = 49, so z = ±7. Both roots check: 49 = 49.", "Solve z^2 = 49.", "\\pm 7",
     "last_statement"),
    ("10% is $3.60, so the tip is $5.40. The bill plus tip comes to $41.40.",
     "What is a 15% tip on a $36 bill, in dollars?", "5.40", "last_statement"),
    ("2c = 18, so c = 9. Then c + d = 13, in case you need it.", "If 2c = 18, what is c?", "9",
     "last_statement"),
    ("The line is y = 4x - 8. It crosses the x-axis at x = 2.",
     "Write the equation of the line with slope 4 through (0, -8).", "4x - 8",
     "last_statement"),
    ("100 km in 2 h is 50 km/h, i.e. 5 km every six minutes.",
     "What is the average speed in km/h?", "50", "last_statement"),
    ("36 km/h is 10 m/s. That's about 22 mph.", "Convert 36 km/h to m/s.", "10",
     "last_statement"),
    ("5/8 = 0.625 exactly. (As a check, 8 × 0.625 = 5.)", "What is 5/8 as a decimal?", "0.625",
     "last_statement"),
    ("3% of 500 g = 15 g of salt, leaving 485 g of water.",
     "How many grams of salt are in 500 g of a 3% brine?", "15", "last_statement"),
    ("The price was 45 / 0.75 = £60. The saving was £15.",
     "After a 25% discount a lamp costs £45. What was the original price in pounds?", "60",
     "last_statement"),
    ("Four around each end and four sides: 12 altogether.",
     "How many edges does a cuboid have?", "12", "last_statement"),
    ("The differences are 3, 5, 7, so the next one is 9: 16 + 9 = 25. The formula n² also "
     "gives 25; the term after would be 36.", "What is the next term of 1, 4, 9, 16, ...?", "25",
     "last_statement"),
]


@pytest.mark.parametrize(("text", "choices", "question", "letter", "method"), CHOICE_RULES)
def test_multiple_choice_rule(
    text: str, choices: list[str], question: str | None, letter: str | None, method: str
) -> None:
    assert extract_answer(text, choices, question=question) == (letter, method)


@pytest.mark.parametrize(("text", "question", "answer", "method"), MATH_RULES)
def test_math_rule(text: str, question: str | None, answer: Any, method: str) -> None:
    assert extract_answer(text, None, question=question) == (answer, method)


def test_a_numbered_steps_number_is_no_answer_in_a_truncated_response() -> None:
    # round grader18c: "2. Divide ..." cut off: the step's number is not the option "2"
    text = "Working it out:\n\n2. Divide the twelve sweets into groups of"
    assert extract_answer(text, ["2", "3", "4", "6"], truncated=True,
                          question="What is 12 ÷ 4?") == (None, "truncated")


def test_a_one_letter_name_that_is_a_plural_ending_is_read_not_a_crash() -> None:
    # "s" as a variable stems to nothing: the token before the asked name must still be read
    # (an IndexError here once stopped a whole `promptmill extract` run).
    text = "Let sister = s, Ravi = 3s. 3s + 6 = 2(s + 6) → s = 6.\n\nRavi is 18 years old now."
    question = ("Ravi is three times as old as his sister. In 6 years he will be twice her "
                "age. How old is Ravi now?")
    assert extract_answer(text, None, question=question) == ("18", "last_statement")


# round grader19m: a leading "Answer:" that a sentence completes; a bold numbered step heading
# is no headline; a placeholder left where the answer goes; spaced thousands with decimals
GRADER19M_MATH_RULES = [
    ("**Answer:** Each bag holds 9 apples.\n\nThere are 27 apples shared among 3 bags.",
     "27 apples are shared equally among 3 bags. How many apples are in each bag?", "9",
     "answer_sentence"),
    ("Answer — the journey takes 4 hours.\n\nAt 60 km/h, 240 km needs 240 / 60 = 4.",
     "How long does a 240 km journey at 60 km/h take, in hours?", "4", "answer_sentence"),
    ("**Step 1: list the divisors.**\n\n1, 2, 3, 6\n\n**Step 2: add them.**\n\n"
     "1 + 2 + 3 + 6 = 12, so the sum of the divisors is 12.",
     "What is the sum of the divisors of 6?", "12", "last_statement"),
    ("Work out the product of the two factors first.\n\nFinal answer: \\boxed{[the product]}",
     "What is 14 × 3?", None, "placeholder"),
    ("Two routes: 12 + 5 = $\\boxed{17}$ km, or 9 + 6 = $\\boxed{15}$ km by the ring road.\n\n"
     "I cannot tell which route is meant, so the distance could be 17 or 15 km.",
     "How far is it from the depot to the school, in km?", None, "undecided"),
    ("The fraction is 3/4. It could be written as 0.75 or 75%.",
     "What fraction of 8 is 6?", "3/4", "last_statement"),
    ("Each row holds 8 chairs and there are 12 rows: 8 × 12 = 96. The hall has 96 chairs.\n\n"
     "As a curious extra, doubling the rows would seat 192 chairs.",
     "How many chairs does the hall seat?", "96", "last_statement"),
    ("12 × 4 = 48, and 48 + 2 = 50.\n\nAs a result, the total is 50.",
     "What is 12 × 4 + 2?", "50", "last_statement"),
    ("```yaml\nspeed_kmh: 60\nhours: 2.5\ndistance_km: 150   # 60 × 2.5\n```",
     "A car drives at 60 km/h for 2.5 hours. How far does it go, in km?", "150",
     "last_statement"),
    ("Halving 24 681.50 gives 12 340.75.\n\nEach share is 12 340.75.",
     "Split 24681.50 into two equal shares. How much is each share?", "12340.75",
     "last_statement"),
]


@pytest.mark.parametrize(("text", "question", "answer", "method"), GRADER19M_MATH_RULES)
def test_grader19m_math_rule(text: str, question: str, answer: Any, method: str) -> None:
    assert extract_answer(text, None, question=question) == (answer, method)


def test_an_answer_sentence_is_read_before_a_cut() -> None:
    # the response was cut off in its check: the stated answer above the cut still counts
    text = "**Answer:** The remainder is **2**.\n\nCheck: 4 × 5 = 20 and 22 − 20"
    assert extract_answer(text, None, truncated=True,
                          question="What is the remainder when 22 is divided by 5?") == (
        "2", "answer_sentence")


# round grader20m: the asked expression with its own numbers commits, the same form with other
# numbers is another instance; a named unit by its symbol; a marker's symbolic value before an
# aside; a unit does not name another noun of the question; an answer line past a restated
# given; two values for one quantity in words: no answer
GRADER20M_MATH_RULES = [
    ("3⁴ = 81, so log₃ 81 = four. Compare log₃ 9 = 2.", "Evaluate $\\log_3 81$.", "4",
     "last_statement"),
    ("√144 = 12 because 12² = 144. In the same way √169 = 13.", "What is $\\sqrt{144}$?", "12",
     "last_statement"),
    ("P = E/t = 600/4.\n\nThe motor delivers 150 W. Over a minute that is 9000 J.",
     "A motor delivers 600 J in 4 s. What is its power, in watts?", "150", "last_statement"),
    ("**Answer: −π.** ($(-1)^{8}\\pi = \\pi$ for an even power.)", "What is $(-1)^{7}\\pi$?",
     "-\\pi", "answer_statement"),
    ("**Answer: −sin x** (its own derivative is −cos x).", "Find the derivative of $\\cos x$.",
     "-\\sin x", "answer_statement"),
    ("The selling price is 60 dollars. The markup is 10 dollars.",
     "A shop adds a 20% markup to a \\$50 cost. What is the selling price in dollars?", "60",
     "last_statement"),
    ("9 ÷ 3 × 7 = 21.\n\n**Answer:** 9 litres fill 21 cups.",
     "3 litres fill 7 cups. How many cups do 9 litres fill?", "21", "answer_statement"),
    ("w(w + 2) = 48 gives w = 6 or w = −8.\n\nSo the width is w = 6 or w = −8.",
     "A plot is 2 m longer than it is wide and its area is 48 m². How wide is it in metres?",
     None, "hedge"),
]


@pytest.mark.parametrize(("text", "question", "answer", "method"), GRADER20M_MATH_RULES)
def test_grader20m_math_rule(text: str, question: str, answer: Any, method: str) -> None:
    assert extract_answer(text, None, question=question) == (answer, method)


@pytest.mark.parametrize("question", [
    "A circle has radius 5 m. What is its area in terms of π?",
    # "Give the answer ...": the form asked, the area still the quantity
    "A circle has radius 5 m. What is its area? Give the answer in terms of π.",
])
def test_a_conclusion_before_a_cut_remark_counts(question: str) -> None:
    # round grader20m: cut off in a remark after "So the area ... is 25π": it had committed
    text = ("A = πr² = 25π.\n\nSo the area of the circle is 25π square metres. That is a bit "
            "more than the area of a 8 m square, which")
    assert extract_answer(text, None, truncated=True, question=question) == (
        "25\\pi", "committed_before_cut")


def test_a_statement_right_before_a_cut_may_go_on() -> None:
    # the cut falls in the working: the last whole sentence is no conclusion yet
    text = "A = πr². With r = 5, r² = 25, so the area so far is 25π. Then we"
    assert extract_answer(text, None, truncated=True,
                          question="A circle has radius 5 m. What is its area in terms of π?") == (
        None, "truncated")


GRADER20C_CHOICE_RULES = [
    # round grader20c: the closing sentence restates one option in its own words (stems,
    # longer forms, spellings, numbers, initialisms either way); words two options share
    # tie, so none; a sentence that wavers between two restated options is a hedge
    ("Glaciers hold most of it. So the answer is the melting of land ice into the sea.",
     ["Thermal expansion", "Meltwater from land glaciers", "Evaporation", "Tides"],
     "What adds water to the oceans as the climate warms?", "B", "option_restated"),
    ("Losing electrons is oxidation. So such an atom has been oxidised.",
     ["It is reduced", "It is oxidized", "It becomes neutral"],
     "What happens to an atom that loses electrons?", "B", "option_restated"),
    ("Every mail server speaks it to the next. That is the simple mail transfer protocol.",
     ["FTP", "SMTP", "HTTP", "SSH"], "Which protocol relays email?", "B", "option_restated"),
    ("Its members ratify the standards airlines follow. It is run by the IMO and the ICAO.",
     ["International Maritime Organization", "International Civil Aviation Organization",
      "World Health Organization", "Interpol"], "Who sets aviation rules?", None, "none"),
    ("The official count is close to 8k.", ["About 800", "About 8,000", "About 80,000"],
     "How many islands are there?", "B", "option_restated"),
    ("It measures something about the air.", ["Air pressure", "Air temperature", "Rain"],
     "What does a barometer measure?", None, "none"),
    ("I recall two; it might be the treaty protecting wetlands or the one on whale hunting.",
     ["Protecting wetlands of international importance", "Ending the hunting of whales",
      "Protecting the ozone layer"],
     "What did the Ramsar Convention do?", None, "hedge"),
    # round grader20c: a configuration line whose key is the pick; a ticked letter alone
    ('[verdict]\nletter = "D"\nwhy = "Mars is red from iron oxide, unlike Venus."', PLANETS,
     "Which planet is called the Red Planet?", "D", "structured_letter"),
    ("Mars is red.\n\n- [ ] A\n- [ ] B\n- [ ] C\n- [x] D", PLANETS,
     "Which planet is called the Red Planet?", "D", "ticked_box"),
    # round grader20c: ", which is option X" names what its clause describes, below an answer
    # stated outright; in a sentence that turns ("But ...") it is the answer
    ("Mars has two moons, so the answer is C. Earth has one, which is option B.",
     ["Zero", "One", "Two", "Three"], "How many moons does Mars have?", "C", "answer_statement"),
    ("I first thought the answer is A. But Mars has two moons, which is option C.",
     ["Zero", "One", "Two", "Three"], "How many moons does Mars have?", "C", "answer_statement"),
    # round grader20c: an opening glossary of bold options is a walk-through, not a headline
    ("* **Heart** – pumps blood\n* **Lung** – exchanges gases\n\nBile is made by the "
     "**liver**.", ORGANS, "Which organ makes bile?", "E", "option_mention"),
]


@pytest.mark.parametrize(("text", "choices", "question", "answer", "method"),
                         GRADER20C_CHOICE_RULES)
def test_grader20c_choice_rule(
    text: str, choices: list[str], question: str, answer: str | None, method: str
) -> None:
    assert extract_answer(text, choices, question=question) == (answer, method)


# a closing statement still decides where a stronger one is taken back or only supposed:
# the closing sentences are read whenever they may, though not where they cannot
CLOSING_OVER_STRONGER = [
    ("The answer is B. Wait, actually, that's wrong: the closest planet to the Sun is Mercury.",
     PLANETS, "A", "option_mention"),
    ("The answer is B.\n\nHmm, no. Actually the closest planet to the Sun is Mercury.",
     PLANETS, "A", "option_mention"),
    ("If we count by mass, the answer is D. The closest planet to the Sun is Mercury.",
     PLANETS, "A", "option_mention"),
    ("The answer is \\boxed{12}. Wait, actually: 20 - 6 = 14, so Tom has 14 apples left.",
     None, "14", "last_statement"),
    ("**12**\n\nNo wait, actually 20 - 6 = 14. Tom has 14 apples left.",
     None, "14", "last_statement"),
]


@pytest.mark.parametrize(("text", "choices", "answer", "method"), CLOSING_OVER_STRONGER)
def test_a_closing_statement_decides_over_a_corrected_or_supposed_answer(
    text: str, choices: list[str] | None, answer: str, method: str
) -> None:
    question = ("Which planet is closest to the Sun?" if choices
                else "How many apples are left if Tom has 20 and gives away 6?")
    assert extract_answer(text, choices, question=question) == (answer, method)
