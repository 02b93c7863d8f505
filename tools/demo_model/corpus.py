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


def tool(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required}}}


def string(description: str, enum: list[str] | None = None) -> dict:
    return {"type": "string", "description": description, **({"enum": enum} if enum else {})}


TOOLS = {
    "get_weather": tool("get_weather", "Get the current weather in a city.",
                        {"city": string("The city name"), "unit": string("Temperature unit", ["celsius", "fahrenheit"])}, ["city"]),
    "get_time": tool("get_time", "Get the current local time in a city.", {"city": string("The city name")}, ["city"]),
    "convert_currency": tool("convert_currency", "Convert an amount of money between currencies.",
                             {"amount": {"type": "number"}, "from_currency": string("ISO code"), "to_currency": string("ISO code")},
                             ["amount", "from_currency", "to_currency"]),
    "search_web": tool("search_web", "Search the web.", {"query": string("The search query")}, ["query"]),
    "set_timer": tool("set_timer", "Start a timer.", {"minutes": {"type": "integer"}}, ["minutes"]),
    "get_stock_price": tool("get_stock_price", "Get the latest price of a stock.", {"symbol": string("Ticker symbol")}, ["symbol"]),
    "send_email": tool("send_email", "Send an email.", {"to": string("Recipient"), "subject": string("Subject line")}, ["to", "subject"]),
    "translate": tool("translate", "Translate text to another language.",
                      {"text": string("The text"), "target_language": string("Language name")}, ["text", "target_language"]),
}
CURRENCIES = ["USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "CNY", "INR", "BRL"]
STOCKS = ["AAPL", "MSFT", "GOOG", "AMZN", "TSLA", "NVDA", "META", "IBM", "INTC", "ORCL"]
TOPICS = ["pyengine", "paged attention", "the tallest mountain", "cheap flights to Rome", "banana bread recipe",
          "the history of chess", "how rainbows form", "best hiking trails", "python asyncio", "the moon landing"]
PHRASES = ["good morning", "thank you very much", "where is the station", "I like green tea", "see you tomorrow",
           "happy birthday", "the cat is sleeping", "how are you"]
LANGUAGES = ["French", "Spanish", "German", "Italian", "Japanese", "Portuguese"]
WEATHER = ["sunny", "cloudy", "rainy", "windy", "snowy", "foggy"]


def tool_request(rng: random.Random, name: str) -> tuple[str, dict, dict, str]:
    """(user phrase, arguments, tool result, final answer) for one call of tool `name`."""
    city = rng.choice(CITIES)
    if name == "get_weather":
        unit = rng.choice([None, "celsius", "fahrenheit"])
        ask = rng.choice([f"What's the weather in {city}?", f"How is the weather in {city} today?",
                          f"Is it raining in {city}?", f"weather {city}"])
        args = {"city": city}
        if unit:
            ask = ask.rstrip("?") + f" in {unit}?"
            args["unit"] = unit
        temp = rng.randint(-5, 35) if unit != "fahrenheit" else rng.randint(25, 95)
        sky = rng.choice(WEATHER)
        sign = "°F" if unit == "fahrenheit" else "°C"
        return ask, args, {"city": city, "temperature": temp, "unit": unit or "celsius", "condition": sky}, \
            f"It is {temp}{sign} and {sky} in {city}."
    if name == "get_time":
        hour, minute = rng.randint(0, 23), rng.randint(0, 59)
        ask = rng.choice([f"What time is it in {city}?", f"Tell me the current time in {city}.", f"time in {city} now?"])
        return ask, {"city": city}, {"city": city, "time": f"{hour:02d}:{minute:02d}"}, \
            f"It is {hour:02d}:{minute:02d} in {city} right now."
    if name == "convert_currency":
        amount, (src, dst) = rng.randint(1, 999), rng.sample(CURRENCIES, 2)
        ask = rng.choice([f"Convert {amount} {src} to {dst}.", f"How much is {amount} {src} in {dst}?",
                          f"I have {amount} {src}. What is that in {dst}?"])
        result = round(amount * rng.uniform(0.2, 3.0), 2)
        return ask, {"amount": amount, "from_currency": src, "to_currency": dst}, {"result": result, "currency": dst}, \
            f"{amount} {src} is about {result} {dst}."
    if name == "search_web":
        topic = rng.choice(TOPICS)
        ask = rng.choice([f"Search the web for {topic}.", f"Look up {topic} online.", f"Can you search for {topic}?"])
        return ask, {"query": topic}, {"results": [f"A page about {topic}", f"More on {topic}"]}, \
            f"I found two pages about {topic}: \"A page about {topic}\" and \"More on {topic}\"."
    if name == "set_timer":
        minutes = rng.randint(1, 90)
        ask = rng.choice([f"Set a timer for {minutes} minutes.", f"Start a {minutes} minute timer.",
                          f"Remind me in {minutes} minutes with a timer."])
        return ask, {"minutes": minutes}, {"status": "started", "minutes": minutes}, f"Your {minutes} minute timer has started."
    if name == "get_stock_price":
        symbol, price = rng.choice(STOCKS), round(rng.uniform(10, 900), 2)
        ask = rng.choice([f"What is the stock price of {symbol}?", f"How much is {symbol} trading at?",
                          f"Get me the latest {symbol} price."])
        return ask, {"symbol": symbol}, {"symbol": symbol, "price": price}, f"{symbol} is trading at {price} dollars."
    if name == "send_email":
        to = rng.choice(NAMES).lower() + "@example.com"
        subject = rng.choice(["Lunch tomorrow", "Meeting notes", "Hello", "Project update", "Weekend plans", "Thank you"])
        ask = rng.choice([f"Send an email to {to} with the subject \"{subject}\".",
                          f"Email {to} about \"{subject}\".", f"Please email {to}, subject: {subject}"])
        return ask, {"to": to, "subject": subject}, {"status": "sent"}, f"Done! I sent the email \"{subject}\" to {to}."
    phrase, language = rng.choice(PHRASES), rng.choice(LANGUAGES)
    ask = rng.choice([f"Translate \"{phrase}\" to {language}.", f"How do you say \"{phrase}\" in {language}?",
                      f"Translate to {language}: {phrase}"])
    return ask, {"text": phrase, "target_language": language}, {"translation": f"[{phrase} in {language}]"}, \
        f"In {language}, \"{phrase}\" is: [{phrase} in {language}]."


def tool_call(rng: random.Random, name: str, args: dict, index: int) -> dict:
    return {"id": f"call_{rng.randrange(16 ** 8):08x}{index}", "type": "function",
            "function": {"name": name, "arguments": args}}


def task_tools(rng: random.Random, reasoning: bool) -> tuple[list[dict], list[dict]]:
    """A tool-use conversation: the call, the results fed back and the answer (or no call when none fits)."""
    names = list(TOOLS)
    offered = rng.sample(names, rng.randint(1, 3))
    if rng.random() < 0.15:  # a request no offered tool serves: answer directly
        other = rng.choice([task_add2, task_sub2, task_fact, task_json, task_count, task_story, task_chat])
        return other(rng, reasoning), [TOOLS[n] for n in offered]
    wanted = [rng.choice(offered)]
    if rng.random() < 0.15:  # two calls at once, of the same or another offered tool
        wanted.append(rng.choice(offered))
    asks, calls, results, answers = [], [], [], []
    for i, name in enumerate(wanted):
        ask, args, result, answer = tool_request(rng, name)
        asks.append(ask)
        calls.append(tool_call(rng, name, args, i))
        results.append({"role": "tool", "tool_call_id": calls[-1]["id"], "content": dumps(result)})
        answers.append(answer)
    request = asks[0] if len(asks) == 1 else f"{asks[0]} Also, {asks[1][0].lower()}{asks[1][1:]}"
    content = None
    if reasoning:
        plan = " ".join(f"I should call {c['function']['name']} with {dumps(c['function']['arguments'])}." for c in calls)
        content = f"<think>\n{plan}\n</think>\n"  # the template adds one more newline
    messages = [user(request), {"role": "assistant", "content": content, "tool_calls": calls}, *results,
                assistant(" ".join(answers))]
    return messages, [TOOLS[n] for n in offered]


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


# -- the mix ------------------------------------------------------------------------------------

TASKS = {  # name: (generator, weight)
    "add1": (task_add1, 6), "add2": (task_add2, 40), "add3": (task_add3, 6), "sub2": (task_sub2, 7), "sub3": (task_sub3, 3),
    "count": (task_count, 5), "fact": (task_fact, 10), "story": (task_story, 4), "json": (task_json, 14),
    "tools": (task_tools, 26), "chat": (task_chat, 3),
}
SYSTEM_PROMPTS = ["You are a helpful assistant.", "You are a friendly assistant. Answer briefly.",
                  "You are pyengine's demo assistant."]
REASONING_SYSTEM_PROMPTS = ["Think step by step before you answer.", "You are a reasoning assistant. Think first, then answer.",
                            "Reason inside <think></think> before answering."]
REASONING_SUFFIXES = [" Think step by step.", " Think first.", " Let's think about it."]


def conversation(rng: random.Random, task: str) -> dict:
    """One conversation of `task`: maybe a system prompt, maybe reasoning, maybe a second turn."""
    reasoning_style = rng.random()  # < 0.12: reasoning system prompt; < 0.2: the user asks to think
    reasoning = reasoning_style < 0.2
    generated = TASKS[task][0](rng, reasoning)
    messages, tools = generated if isinstance(generated, tuple) else (generated, None)
    if reasoning_style >= 0.12 and reasoning:
        messages[0] = user(messages[0]["content"] + rng.choice(REASONING_SUFFIXES))
    if rng.random() < 0.15 and tools is None:  # a follow-up turn of another task
        follow = TASKS[rng.choice(["add2", "fact", "json", "count", "sub2", "chat"])][0](rng, reasoning)
        if reasoning_style >= 0.12 and reasoning:
            follow[0] = user(follow[0]["content"] + rng.choice(REASONING_SUFFIXES))
        messages = messages + follow
    if reasoning_style < 0.12:
        messages = [{"role": "system", "content": rng.choice(REASONING_SYSTEM_PROMPTS)}] + messages
    elif rng.random() < 0.25:
        messages = [{"role": "system", "content": rng.choice(SYSTEM_PROMPTS)}] + messages
    record = {"task": task, "messages": messages}
    if tools:
        record["tools"] = tools
    return record


def generate(seed: int, n: int) -> list[dict]:
    rng = random.Random(seed)
    names = list(TASKS)
    weights = [TASKS[name][1] for name in names]
    return [conversation(rng, rng.choices(names, weights)[0]) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=60000, help="number of conversations")
    parser.add_argument("--out", required=True, help="JSONL file to write")
    args = parser.parse_args()
    with open(args.out, "w", encoding="utf-8") as f:
        for record in generate(args.seed, args.n):
            f.write(dumps(record) + "\n")


if __name__ == "__main__":
    main()
