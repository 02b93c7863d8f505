"""Synthetic chat corpus for pyengine's embedded demo model (`pyengine/demo_model`).

Deterministic from a seed; every conversation is one JSON line in OpenAI chat format:

    {"task": "add2", "messages": [{"role": "user", "content": ...}, {"role": "assistant", ...}],
     "tools": [...]}                       # "tools" only where the conversation offers tools

    python tools/demo_model/corpus.py --seed 0 --n 60000 --out runs/corpus.jsonl

Tasks (see TASKS for the mix): two- and three-digit addition and subtraction worked digit by digit,
counting, facts from a small public-domain table, short stories, JSON answers for extraction
requests, Hermes-style tool calls (`<tool_call>{"name": ..., "arguments": {...}}</tool_call>`, with
the tool results fed back as `tool` messages), chit-chat, and `<think>...</think>` reasoning first
whenever the system prompt or the user asks the model to think. Held-out evaluation prompts come
from the same generators with another seed (see evaluate.py).
"""

from __future__ import annotations

import argparse
import json
import random

import toolgen

# -- the world table ----------------------------------------------------------------------------

COUNTRIES = [  # country, capital, continent, language
    ("France", "Paris", "Europe", "French"), ("Germany", "Berlin", "Europe", "German"),
    ("Italy", "Rome", "Europe", "Italian"), ("Spain", "Madrid", "Europe", "Spanish"),
    ("Portugal", "Lisbon", "Europe", "Portuguese"), ("Greece", "Athens", "Europe", "Greek"),
    ("Poland", "Warsaw", "Europe", "Polish"), ("Sweden", "Stockholm", "Europe", "Swedish"),
    ("Norway", "Oslo", "Europe", "Norwegian"), ("Ireland", "Dublin", "Europe", "English"),
    ("Japan", "Tokyo", "Asia", "Japanese"), ("China", "Beijing", "Asia", "Chinese"),
    ("India", "New Delhi", "Asia", "Hindi"), ("Thailand", "Bangkok", "Asia", "Thai"),
    ("Vietnam", "Hanoi", "Asia", "Vietnamese"), ("Egypt", "Cairo", "Africa", "Arabic"),
    ("Kenya", "Nairobi", "Africa", "Swahili"), ("Nigeria", "Abuja", "Africa", "English"),
    ("Morocco", "Rabat", "Africa", "Arabic"), ("Brazil", "Brasilia", "South America", "Portuguese"),
    ("Argentina", "Buenos Aires", "South America", "Spanish"), ("Peru", "Lima", "South America", "Spanish"),
    ("Chile", "Santiago", "South America", "Spanish"), ("Canada", "Ottawa", "North America", "English"),
    ("Mexico", "Mexico City", "North America", "Spanish"), ("Cuba", "Havana", "North America", "Spanish"),
    ("Australia", "Canberra", "Oceania", "English"), ("New Zealand", "Wellington", "Oceania", "English"),
]
ANIMALS = [  # animal, sound, legs, home
    ("cat", "meow", 4, "a house"), ("dog", "woof", 4, "a kennel"), ("cow", "moo", 4, "a barn"),
    ("duck", "quack", 2, "a pond"), ("owl", "hoot", 2, "a tree"), ("horse", "neigh", 4, "a stable"),
    ("sheep", "baa", 4, "a field"), ("frog", "croak", 4, "a pond"), ("bee", "buzz", 6, "a hive"),
    ("lion", "roar", 4, "the savanna"), ("hen", "cluck", 2, "a coop"), ("spider", "hiss", 8, "a web"),
]
PLANETS = ["Mercury", "Venus", "Earth", "Mars", "Jupiter", "Saturn", "Uranus", "Neptune"]
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth"]
NAMES = ["Maria", "John", "Aiko", "Omar", "Lena", "Carlos", "Priya", "Tom", "Sofia", "Ivan", "Mei",
         "Lucas", "Amara", "Noah", "Elena", "Ravi", "Clara", "Yusuf", "Anna", "Kofi", "Ines", "Ben",
         "Hana", "Leo", "Zara", "Max", "Nina", "Sam", "Rosa", "Felix"]
CITIES = [c[1] for c in COUNTRIES] + ["London", "New York", "Sydney", "Toronto", "Chicago", "Seoul",
                                      "Istanbul", "Barcelona", "Munich", "Osaka", "Boston", "Vienna"]
COLORS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "gray", "pink"]
PRODUCTS = ["lamp", "chair", "backpack", "phone", "bicycle", "kettle", "jacket", "clock", "guitar",
            "table", "camera", "umbrella", "notebook", "mug", "scarf"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
EVENTS = ["concert", "meeting", "wedding", "party", "conference", "match", "festival", "dinner"]
JOBS = ["teacher", "doctor", "baker", "pilot", "engineer", "painter", "farmer", "nurse", "chef", "writer"]
FRUITS = ["apples", "pears", "plums", "oranges", "lemons", "cherries", "bananas", "peaches", "grapes"]
PLACES = ["a quiet village", "a big city", "a dark forest", "a small island", "the mountains",
          "a sunny beach", "an old castle", "a busy market"]
OBJECTS = ["a golden key", "a red kite", "an old map", "a tiny boat", "a glowing stone", "a lost hat",
           "a wooden box", "a silver bell"]

# -- small helpers ------------------------------------------------------------------------------


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


def think(reasoning: str, answer: str) -> str:
    """The reasoning-style reply: the thinking first, then the answer after a blank line."""
    return f"<think>\n{reasoning}\n</think>\n\n{answer}"


def digits_of(n: int, width: int) -> list[int]:
    """Digits of n from the units up, zero-padded to `width`."""
    return [(n // 10 ** i) % 10 for i in range(width)]


# -- arithmetic ---------------------------------------------------------------------------------


def addition_steps(a: int, b: int) -> tuple[str, int]:
    """Column addition, units first: '7 + 8 = 15, carry 1. 4 + 3 + 1 = 8.' and the sum."""
    width = max(len(str(a)), len(str(b)))
    steps, carry = [], 0
    for i, (x, y) in enumerate(zip(digits_of(a, width), digits_of(b, width))):
        total = x + y + carry
        terms = f"{x} + {y}" + (f" + {carry}" if carry else "")
        carry = total // 10 if i < width - 1 else 0
        steps.append(f"{terms} = {total}" + (", carry 1." if carry else "."))
    return " ".join(steps), a + b


def subtraction_steps(a: int, b: int) -> tuple[str, int]:
    """Column subtraction (a >= b), units first: '2 - 7 needs a borrow: 12 - 7 = 5.' and the difference."""
    width = len(str(a))
    steps, borrow = [], 0
    for x, y in zip(digits_of(a, width), digits_of(b, width)):
        top = f"{x} - {borrow}" if borrow else f"{x}"
        value = x - borrow
        if value < y:
            steps.append(f"{top} - {y} needs a borrow: {value + 10} - {y} = {value + 10 - y}.")
            borrow = 1
        else:
            steps.append(f"{top} - {y} = {value - y}.")
            borrow = 0
    return " ".join(steps), a - b


ADD_PROMPTS = ["What is {a} + {b}?", "What is {a} plus {b}?", "Add {a} and {b}.", "{a} + {b} = ?",
               "Compute {a} + {b}.", "Calculate {a} + {b}", "what's {a}+{b}?", "How much is {a} + {b}?",
               "Please add {a} and {b}.", "What do you get when you add {a} and {b}?"]
SUB_PROMPTS = ["What is {a} - {b}?", "What is {a} minus {b}?", "Subtract {b} from {a}.", "{a} - {b} = ?",
               "Compute {a} - {b}.", "Calculate {a} - {b}", "what's {a}-{b}?", "How much is {a} - {b}?"]


def arithmetic(rng: random.Random, op: str, digits: int) -> tuple[str, str, str]:
    """(prompt, worked steps, final sentence) for one +/- problem with `digits`-digit operands."""
    low, high = 10 ** (digits - 1), 10 ** digits - 1
    a, b = rng.randint(low, high), rng.randint(low if op == "+" else 1, high)
    if op == "-" and b > a:
        a, b = b, a
    steps, result = addition_steps(a, b) if op == "+" else subtraction_steps(a, b)
    prompt = rng.choice(ADD_PROMPTS if op == "+" else SUB_PROMPTS).format(a=a, b=b)
    return prompt, steps, f"So {a} {op} {b} = {result}."


def task_arithmetic(rng: random.Random, op: str, digits: int, reasoning: bool) -> list[dict]:
    prompt, steps, final = arithmetic(rng, op, digits)
    restated = final[3:].split(" = ")[0]  # "19 + 38": copied from the prompt once, next to the steps
    if reasoning:
        return [user(prompt), assistant(think(f"{restated}: {steps}", final[3:]))]
    return [user(prompt), assistant(f"{restated}: {steps} {final}")]


def task_add2(rng, reasoning):
    return task_arithmetic(rng, "+", 2, reasoning)


def task_add1(rng, reasoning):  # the one-digit facts every column step uses, drilled on their own
    return task_arithmetic(rng, "+", 1, reasoning)


def task_add3(rng, reasoning):
    return task_arithmetic(rng, "+", 3, reasoning)


def task_sub2(rng, reasoning):
    return task_arithmetic(rng, "-", 2, reasoning)


def task_sub3(rng, reasoning):
    return task_arithmetic(rng, "-", 3, reasoning)


def task_count(rng: random.Random, reasoning: bool) -> list[dict]:
    kind = rng.randrange(3)
    if kind == 0:
        start = rng.randint(0, 90)
        end = start + rng.randint(3, 9)
        prompt = rng.choice(["Count from {s} to {e}.", "Count from {s} to {e}, please.",
                             "Can you count from {s} to {e}?", "List the numbers from {s} to {e}."])
        answer = ", ".join(str(i) for i in range(start, end + 1)) + "."
        return [user(prompt.format(s=start, e=end)), assistant(answer)]
    if kind == 1:
        n = rng.randint(1, 998)
        prompt = rng.choice(["What number comes after {n}?", "What comes after {n}?", "What is the next number after {n}?"])
        answer = f"{n + 1} comes after {n}."
        return [user(prompt.format(n=n)), assistant(answer)]
    items = rng.sample(FRUITS + PRODUCTS, rng.randint(2, 7))
    prompt = rng.choice(["How many items are in this list: {l}?", "Count the items: {l}.",
                         "How many things did I name? {l}"]).format(l=", ".join(items))
    counted = " ".join(f"{item} ({i}){',' if i < len(items) else '.'}" for i, item in enumerate(items, 1))
    answer = f"There are {len(items)} items."
    if reasoning:
        return [user(prompt), assistant(think(f"Counting them: {counted}", answer))]
    return [user(prompt), assistant(answer)]


def task_fact(rng: random.Random, reasoning: bool) -> list[dict]:
    kind = rng.randrange(7)
    country, capital, continent, language = rng.choice(COUNTRIES)
    animal, sound, legs, home = rng.choice(ANIMALS)
    if kind <= 1:
        prompt = rng.choice(["What is the capital of {c}?", "What's the capital city of {c}?",
                             "Tell me the capital of {c}.", "capital of {c}?", "Which city is the capital of {c}?"])
        q, answer, why = prompt.format(c=country), f"The capital of {country} is {capital}.", f"{capital} is the capital city of {country}."
    elif kind == 2:
        prompt = rng.choice(["Which continent is {c} in?", "On which continent is {c}?", "Where is {c}?"])
        q, answer, why = prompt.format(c=country), f"{country} is in {continent}.", f"{country} is a country in {continent}."
    elif kind == 3:
        prompt = rng.choice(["What language do people speak in {c}?", "What is the main language of {c}?"])
        q, answer, why = prompt.format(c=country), f"The main language of {country} is {language}.", f"Most people in {country} speak {language}."
    elif kind == 4:
        prompt = rng.choice(["What sound does a {a} make?", "What does a {a} say?"])
        q, answer, why = prompt.format(a=animal), f"A {animal} says \"{sound}\".", f"The sound of a {animal} is {sound}."
    elif kind == 5:
        prompt = rng.choice(["How many legs does a {a} have?", "How many legs has a {a}?"])
        q, answer, why = prompt.format(a=animal), f"A {animal} has {legs} legs.", f"A {animal} walks on {legs} legs."
    else:
        i = rng.randrange(len(PLANETS))
        if rng.random() < 0.5:
            q = rng.choice(["Which planet is {o} from the sun?", "What is the {o} planet from the sun?"]).format(o=ORDINALS[i])
        else:
            q = rng.choice(["Where is {p} in the solar system?", "Which place does {p} have among the planets?"]).format(p=PLANETS[i])
        answer = f"{PLANETS[i]} is the {ORDINALS[i]} planet from the sun."
        why = "The planets in order are " + ", ".join(PLANETS[:i + 1]) + "."
    if reasoning:
        return [user(q), assistant(think(why, answer))]
    return [user(q), assistant(answer)]


def task_story(rng: random.Random, reasoning: bool) -> list[dict]:
    name, (animal, _, _, _) = rng.choice(NAMES), rng.choice(ANIMALS)
    place, thing, color = rng.choice(PLACES), rng.choice(OBJECTS), rng.choice(COLORS)
    hero = rng.choice([name, f"a little {animal}", f"a {color} {animal}"])
    topic = rng.choice([hero, thing, place])
    prompt = rng.choice(["Tell me a short story about {t}.", "Write a short story about {t}.",
                         "Can you tell me a story about {t}?", "A tiny story about {t}, please."]).format(t=topic)
    hero_cap = hero[0].upper() + hero[1:]
    friend = rng.choice([n for n in NAMES if n != name])
    story = rng.choice([
        f"Once upon a time, {hero} lived in {place}. One morning, {hero} found {thing}. "
        f"{hero_cap} showed it to {friend}, and together they followed it all day. "
        f"In the evening they came home tired and happy. The end.",
        f"{hero_cap} lived in {place} and loved the color {color}. One day, {hero} lost {thing}. "
        f"{friend} helped to look everywhere, and at last they found it under a {color} leaf. "
        f"{hero_cap} smiled and said thank you. The end.",
        f"In {place}, there was {thing} that nobody could explain. {hero_cap} wanted to know its secret. "
        f"After many days of searching, {hero} learned that it was a gift from {friend}. "
        f"From then on, they were best friends. The end.",
    ])
    if reasoning:
        plan = f"A short story about {topic}. I will pick {place} as the place and {thing} as the surprise."
        return [user(prompt), assistant(think(plan, story))]
    return [user(prompt), assistant(story)]


# -- JSON answers -------------------------------------------------------------------------------


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)


def task_json(rng: random.Random, reasoning: bool) -> list[dict]:
    kind = rng.randrange(5)
    name, city, color, product = rng.choice(NAMES), rng.choice(CITIES), rng.choice(COLORS), rng.choice(PRODUCTS)
    if kind == 0:
        age = rng.randint(18, 90)
        text = rng.choice([f"{name} is {age} years old and lives in {city}.", f"{name} lives in {city}. {name} is {age}.",
                           f"Meet {name}, {age}, from {city}."])
        keys, value = "name, age and city", {"name": name, "age": age, "city": city}
    elif kind == 1:
        price = rng.randint(2, 500)
        text = rng.choice([f"The {color} {product} costs {price} dollars.", f"A {color} {product} for {price} dollars.",
                           f"Buy this {product} in {color} for only {price} dollars!"])
        keys, value = "product, color and price", {"product": product, "color": color, "price": price}
    elif kind == 2:
        event, month, day = rng.choice(EVENTS), rng.choice(MONTHS), rng.randint(1, 28)
        text = rng.choice([f"The {event} is on {month} {day} in {city}.", f"Join us in {city} for the {event} on {month} {day}.",
                           f"{city} hosts the {event} on {month} {day}."])
        keys, value = "event, date and city", {"event": event, "date": f"{month} {day}", "city": city}
    elif kind == 3:
        job, years = rng.choice(JOBS), rng.randint(1, 40)
        text = rng.choice([f"{name} has worked as a {job} for {years} years.", f"{name} is a {job} with {years} years of experience."])
        keys, value = "name, job and years", {"name": name, "job": job, "years": years}
    else:
        country, capital, continent, _ = rng.choice(COUNTRIES)
        question = rng.choice([f"Give me the capital and continent of {country} as JSON.",
                               f"Answer in JSON: what is the capital of {country} and where is it?",
                               f"Return a JSON object with the country {country}, its capital and its continent."])
        value = {"country": country, "capital": capital, "continent": continent}
        return [user(question), assistant(answer_json(value, f"{capital} is the capital of {country}, in {continent}.", reasoning))]
    request = rng.choice([f"Extract the {keys} as JSON: {text}", f"{text}\nReturn the {keys} as a JSON object.",
                          f"Reply in JSON with the keys {keys}. Text: {text}", f"Extract JSON ({keys}) from: {text}"])
    return [user(request), assistant(answer_json(value, f"The text gives {', '.join(f'{k} {v}' for k, v in value.items())}.", reasoning))]


def answer_json(value: dict, reasoning_text: str, reasoning: bool) -> str:
    return think(reasoning_text, dumps(value)) if reasoning else dumps(value)


# -- tools --------------------------------------------------------------------------------------


def tool_call(rng: random.Random, name: str, args: dict, index: int) -> dict:
    return {"id": f"call_{rng.randrange(16 ** 8):08x}{index}", "type": "function",
            "function": {"name": name, "arguments": args}}


def offered_tools(world: toolgen.World, long: bool) -> list[dict]:
    """One to six random tools with distinct names."""
    tools: dict[str, dict] = {}
    count = world.rng.choice([1, 1, 2, 2, 3, 3, 4, 5, 6])
    while len(tools) < count:
        t = world.tool(long=long)
        tools.setdefault(t["function"]["name"], t)
    return list(tools.values())


def task_tools(rng: random.Random, reasoning: bool, split: str = "train") -> tuple[list[dict], list[dict]]:
    """A tool-use conversation with tools drawn at random: the call, the results fed back and the
    answer in words, or a direct answer when no offered tool fits the request."""
    world = toolgen.World(rng, split)
    offered = offered_tools(world, long=rng.random() < 0.25)
    if rng.random() < 0.15:  # a request no offered tool serves: answer directly
        other = rng.choice([task_add2, task_sub2, task_fact, task_json, task_count, task_story, task_chat])
        return other(rng, reasoning), offered
    wanted = []  # (tool, request, arguments)
    if split == "train" and rng.random() < 0.2:  # the docs' weather example, in its variants, among the others
        weather, ask, arguments = toolgen.weather_request(rng)
        offered.insert(rng.randrange(len(offered) + 1), weather)
        wanted.append((weather, ask, arguments))
    else:
        tool = rng.choice(offered)
        wanted.append((tool, *toolgen.request(world, tool)))
    if rng.random() < 0.15:  # two calls at once, of the same or another offered tool
        tool = rng.choice(offered)
        wanted.append((tool, *toolgen.request(world, tool)) if "weather" not in tool["function"]["name"].lower()
                      else (tool, *toolgen.weather_request_for(rng, tool)))
    calls, results, answers = [], [], []
    for i, (tool, _, arguments) in enumerate(wanted):
        calls.append(tool_call(rng, tool["function"]["name"], arguments, i))
        result, answer = toolgen.result_for(world, arguments)
        results.append({"role": "tool", "tool_call_id": calls[-1]["id"], "content": dumps(result)})
        answers.append(answer)
    asks = [ask for _, ask, _ in wanted]
    request = asks[0] if len(asks) == 1 else f"{asks[0].rstrip('.?')}. Also, {asks[1][0].lower()}{asks[1][1:]}"
    content = None
    if reasoning:
        plan = " ".join(f"I should call {c['function']['name']} with {dumps(c['function']['arguments'])}." for c in calls)
        content = f"<think>\n{plan}\n</think>\n"  # the template adds one more newline
    messages = [user(request), {"role": "assistant", "content": content, "tool_calls": calls}, *results,
                assistant(" ".join(answers))]
    return messages, offered


def task_chat(rng: random.Random, reasoning: bool) -> list[dict]:
    pairs = [
        (["Hello!", "Hi!", "hi", "Hey there", "Good morning!"], "Hello! How can I help you today?"),
        (["Who are you?", "What are you?", "Introduce yourself."],
         "I am the pyengine demo assistant, a very small language model. I can add and subtract, count, "
         "answer simple questions about countries, animals and planets, tell short stories, reply in JSON "
         "and call tools."),
        (["What can you do?", "How can you help me?"],
         "I can do simple arithmetic, count, answer simple facts, tell short stories, extract JSON from text "
         "and call the tools you give me."),
        (["Thank you!", "Thanks a lot.", "thanks"], "You are welcome!"),
        (["Goodbye!", "Bye", "See you later."], "Goodbye! Have a nice day."),
        (["How are you?", "How are you doing today?"], "I am fine, thank you! How can I help you?"),
    ]
    asks, answer = rng.choice(pairs)
    ask = rng.choice(asks)
    if reasoning:
        return [user(ask), assistant(think("The user is chatting with me. I will answer kindly.", answer))]
    return [user(ask), assistant(answer)]


# -- copying drills ------------------------------------------------------------------------------
# A right tool call is copied: the name and keys from the tool list, the values from the request. A
# model trained from scratch learns to copy (attention that finds the earlier occurrence of the token
# it just wrote and writes the one that followed it) when copying pays from the first step: these
# drills ask for made-up words said back, values looked up by their made-up keys, and the names and
# parameters of the tools offered in the prompt.

COPY_PROMPTS = ["Repeat after me: {x}", "Say this back exactly: {x}", "Echo: {x}", 'Please repeat "{x}".',
                "Copy this: {x}", "Write {x} again.", "Repeat exactly:\n{x}", "Say {x}"]


def copy_item(world: toolgen.World) -> str:
    """One thing to say back: a made-up word, a listed word, a code, a number or a tool-like name."""
    kind = world.rng.randrange(6)
    if kind == 0:
        return world.made_up()
    if kind == 1:
        return world.rng.choice(world.nouns + world.verbs)
    if kind == 2:
        return world.string_value()
    if kind == 3:
        return str(world.rng.randint(0, 99999))
    return world.spelled(world.tool_words(), camel=kind == 5)


def task_copy(rng: random.Random, reasoning: bool) -> list[dict]:
    world = toolgen.World(rng)
    items = [copy_item(world) for _ in range(rng.choice([1, 1, 2, 3, 4, 6, 8, 12]))]
    text = rng.choice([" ", " ", ", ", "\n"]).join(items)
    reply = think("The user wants these words back exactly.", text) if reasoning else text
    return [user(rng.choice(COPY_PROMPTS).format(x=text)), assistant(reply)]


# syllables of the made-up words, listed words (never a held-out one), cities and digits, drawn uniformly
ECHO_PIECES = sorted({o + v + c for o in toolgen.ONSETS for v in toolgen.VOWELS for c in toolgen.CODAS}) + \
    toolgen.split_words(toolgen.VERBS, "train") + toolgen.split_words(toolgen.NOUNS, "train") + toolgen.ADJECTIVES + \
    toolgen.CITIES + [str(d) for d in range(10)]
ECHO_PROMPTS = ["Repeat these pieces: {x}", "Say back: {x}", "Echo these: {x}", "Copy: {x}"]


def task_echo(rng: random.Random, reasoning: bool) -> list[dict]:
    """Eight to forty pieces drawn uniformly from 831 (syllables, words, digits), said back. No piece
    tells what the next one is, so nothing but looking back at the request lowers the loss on the
    reply. `--tasks echo` writes a corpus of these alone: the recipe's second stage, where copying
    learned on random tokens meets the corpus's words and spaces. In the full mix (about one
    conversation in eleven) they keep that copying in use."""
    text = " ".join(rng.choice(ECHO_PIECES) for _ in range(rng.randint(8, 40)))
    reply = think("The user wants these pieces back exactly.", text) if reasoning else text
    return [user(rng.choice(ECHO_PROMPTS).format(x=text)), assistant(reply)]


def task_recall(rng: random.Random, reasoning: bool) -> list[dict]:
    """Made-up keys with values, one of them asked for: the lookup behind every argument."""
    world = toolgen.World(rng)
    table: dict[str, str] = {}
    while len(table) < rng.randint(2, 8):
        table[world.spelled(world.key_words(), camel=rng.random() < 0.3)] = copy_item(world)
    key = rng.choice(list(table))
    listed = rng.choice(["\n".join(f"{k}: {v}" for k, v in table.items()), ", ".join(f"{k} = {v}" for k, v in table.items())])
    ask = rng.choice([f"{listed}\nWhat is {key}?", f"Here are some values:\n{listed}\nWhich value has {key}?",
                      f"Remember these: {listed}. What was {key}?"])
    answer = rng.choice([f"{key} is {table[key]}.", table[key]])
    return [user(ask), assistant(think(f"I look for {key} in the list.", answer) if reasoning else answer)]


def task_tool_info(rng: random.Random, reasoning: bool) -> tuple[list[dict], list[dict]]:
    """Questions about the offered tools, answered with their names and keys as the tool list spells them."""
    world = toolgen.World(rng)
    offered = offered_tools(world, long=rng.random() < 0.25)
    names = [t["function"]["name"] for t in offered]
    if rng.random() < 0.5:
        ask = rng.choice(["Which tools can you use?", "What tools do you have?", "List your tools.", "Name the tools you can call."])
        answer = "I can use " + join_words(names) + "."
        return [user(ask), assistant(think("The tools are listed above.", answer) if reasoning else answer)], offered
    tool = rng.choice(offered)["function"]
    keys, required = list(tool["parameters"]["properties"]), tool["parameters"]["required"]
    ask = rng.choice(["What parameters does {n} take?", "Which arguments does {n} need?", "How do I call {n}?"]).format(n=tool["name"])
    answer = f"{tool['name']} takes {join_words(keys)}; {join_words(required)} {'is' if len(required) == 1 else 'are'} required."
    return [user(ask), assistant(think(f"I read the parameters of {tool['name']}.", answer) if reasoning else answer)], offered


def join_words(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# -- the mix ------------------------------------------------------------------------------------

TASKS = {  # name: (generator, weight)
    "add1": (task_add1, 5), "add2": (task_add2, 30), "add3": (task_add3, 12), "sub2": (task_sub2, 6), "sub3": (task_sub3, 3),
    "count": (task_count, 4), "fact": (task_fact, 8), "story": (task_story, 3), "json": (task_json, 12),
    "tools": (task_tools, 36), "chat": (task_chat, 3),
    "copy": (task_copy, 14), "recall": (task_recall, 8), "tool_info": (task_tool_info, 8), "echo": (task_echo, 15),
}
SYSTEM_PROMPTS = ["You are a helpful assistant.", "You are a friendly assistant. Answer briefly.",
                  "You are pyengine's demo assistant."]
REASONING_SYSTEM_PROMPTS = ["Think step by step before you answer.", "You are a reasoning assistant. Think first, then answer.",
                            "Reason inside <think></think> before answering."]
REASONING_SUFFIXES = [" Think step by step.", " Think first.", " Let's think about it."]
# sentences of long system prompts: context a model must read past, never a change of behaviour
POLICY_SENTENCES = [
    "You work for {company}, a company that sells {thing}s in {city}.", "Be polite and keep answers short.",
    "Never share a password, a key or a token.", "The support team works from {h1}:00 to {h2}:00.",
    "Customers often ask about the {thing}; answer with what you know.", "Today is {month} {day}.",
    "If you do not know something, say so.", "Use the tools when they help the user.",
    "Write numbers with digits.", "The user's account is in {city}.", "Do not invent prices or dates.",
    "Refunds take {n} days.", "Prefer plain words to jargon.", "Greet the user only once.",
    "The office of {company} is next to the {thing} shop.", "{name} is the manager on duty today.",
    "Orders above {n}0 dollars ship for free.", "Answer in the language the user writes in.",
]
COMPANIES = ["Acme", "Globex", "Initech", "Umbrella Works", "Blue Harbor", "Northwind", "Sunrise Labs"]


def long_system_prompt(rng: random.Random) -> str:
    sentences = [rng.choice(POLICY_SENTENCES) for _ in range(rng.randint(8, 30))]
    return " ".join(s.format(company=rng.choice(COMPANIES), thing=rng.choice(PRODUCTS), city=rng.choice(CITIES),
                             h1=rng.randint(6, 10), h2=rng.randint(16, 22), month=rng.choice(MONTHS),
                             day=rng.randint(1, 28), n=rng.randint(2, 9), name=rng.choice(NAMES)) for s in sentences)


def earlier_turns(rng: random.Random, reasoning: bool) -> list[dict]:
    """A few finished exchanges before the conversation's task: a long chat to read past."""
    turns: list[dict] = []
    for _ in range(rng.randint(2, 6)):
        generated = TASKS[rng.choice(["add2", "fact", "json", "count", "sub2", "chat", "story"])][0](rng, reasoning)
        turns += generated
    return turns


SWITCHABLE = ("add2", "add3", "sub2", "fact", "json", "count")  # tasks whose replies can reason


def switch_thinking(record: dict, on: bool) -> None:
    """chat_template_kwargs enable_thinking: true opens a block in the generation prompt (the reply
    reasons in it, closes it, answers), false writes an empty closed block (the reply is the answer).
    The last reply starts with that block; training skips it (render.assistant_char_spans)."""
    messages = record["messages"]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    if on and not messages[last]["content"].startswith("<think>\n"):
        return  # a reply that never reasons (counting) cannot follow an opened block
    if not on:
        messages[last] = assistant("<think>\n\n</think>\n\n" + messages[last]["content"])
    record["enable_thinking"] = on


def conversation(rng: random.Random, task: str) -> dict:
    """One conversation of `task`: maybe a system prompt, maybe reasoning, maybe a second turn, and in
    about one in seven a long context (a long system prompt, earlier turns or both) to read past."""
    reasoning_style = rng.random()  # < 0.12: reasoning system prompt; < 0.2: the user asks to think
    switch = rng.random() < 0.5 if task in SWITCHABLE and rng.random() < 0.08 else None
    if switch is not None:  # enable_thinking decides, not the words of the prompt
        reasoning_style = 0.5 if switch is False else 0.3
    reasoning = reasoning_style < 0.2 or switch is True
    generated = TASKS[task][0](rng, reasoning)
    messages, tools = generated if isinstance(generated, tuple) else (generated, None)
    if reasoning_style >= 0.12 and reasoning and switch is None:
        messages[0] = user(messages[0]["content"] + rng.choice(REASONING_SUFFIXES))
    if rng.random() < 0.15 and tools is None and switch is None:  # a follow-up turn of another task
        follow = TASKS[rng.choice(["add2", "fact", "json", "count", "sub2", "chat"])][0](rng, reasoning)
        if reasoning_style >= 0.12 and reasoning:
            follow[0] = user(follow[0]["content"] + rng.choice(REASONING_SUFFIXES))
        messages = messages + follow
    long = rng.random()
    if long < 0.1 and not reasoning:
        messages = earlier_turns(rng, reasoning) + messages
    if reasoning_style < 0.12:
        messages = [{"role": "system", "content": rng.choice(REASONING_SYSTEM_PROMPTS)}] + messages
    elif 0.06 <= long < 0.16:
        messages = [{"role": "system", "content": long_system_prompt(rng)}] + messages
    elif rng.random() < 0.25:
        messages = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] + messages
    record = {"task": task, "messages": messages}
    if switch is not None:
        switch_thinking(record, switch)
    if tools:
        record["tools"] = tools
    return record


def generate(seed: int, n: int, tasks: list[str] | None = None) -> list[dict]:
    """n conversations of the given tasks (default: all), drawn in the TASKS proportions."""
    rng = random.Random(seed)
    names = tasks or list(TASKS)
    weights = [TASKS[name][1] for name in names]
    return [conversation(rng, rng.choices(names, weights)[0]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=60000, help="number of conversations")
    parser.add_argument("--out", required=True, help="JSONL file to write")
    parser.add_argument("--made-up-share", type=float, default=toolgen.MADE_UP_SHARE,
                        help="share of tool nouns made up on the spot (the rest from the word lists)")
    parser.add_argument("--tasks", default="", help="comma-separated task names to draw from (default: all of TASKS)")
    args = parser.parse_args()
    toolgen.MADE_UP_SHARE = args.made_up_share
    with open(args.out, "w", encoding="utf-8") as f:
        for record in generate(args.seed, args.n, [t for t in args.tasks.split(",") if t]):
            f.write(dumps(record) + "\n")


if __name__ == "__main__":
    main()
