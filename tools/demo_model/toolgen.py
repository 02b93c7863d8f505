"""Random tools for the demo model's corpus: names, descriptions and parameters it has never seen.

A tool call is mostly copying: the tool's name from the list in the prompt, the keys from its
parameters, the values from the user's words. To make copying the only way to a right call, every
tool conversation draws a fresh world:

- tool names from a verb and one or two nouns (`find_hotel_room`, `book_tovasin`, sometimes camelCase),
  descriptions from templates, parameters of every JSON Schema type the server's tool parser meets
  (string, integer, number, boolean, enum, array of strings, nested object), a random required list;
- a user request that names the action and states each value next to the parameter's words
  ("... with check in date May 3 and guests 2"), so the call copies name, keys and values;
- a few realistic shapes users try first: a weather tool with `location` and a `unit` enum (vLLM's
  and OpenAI's docs example), parallel calls, results answered in words.

Half the nouns (and a quarter of the verbs) are made-up words, the rest come from word lists split in
two: a held-out sixth of the listed verbs and nouns (`split="held_out"`) never occurs in training, so
the evaluation asks for tools whose names and keys the model has never seen.
"""

from __future__ import annotations

import json
import random

VERBS = """get find search create update delete list check book cancel send fetch add remove start stop
schedule calculate convert translate lookup track order reserve compute count rename move share upload
download play pause set reset open close submit approve reject assign archive restore sync verify
validate scan print export import generate summarize measure estimate compare rate record register
subscribe unsubscribe notify invite block report resolve""".split()
VERBS = list(dict.fromkeys(VERBS))  # one place per word, so a word is either trained or held out
NOUNS = """weather forecast hotel room flight ticket order invoice customer account user profile message
email note task reminder event meeting calendar contact address city country recipe ingredient movie
song album playlist book author article news stock price portfolio payment refund shipment package
parcel product item cart coupon review rating restaurant table reservation doctor appointment patient
car rental trip route traffic parking train bus station airport gate seat passenger baggage visa
currency amount rate balance budget expense salary employee team project issue ticket bug release
version file folder document image photo video device sensor temperature humidity light door lock
alarm timer clock zone language word phrase sentence color size shape score game player match league
course lesson student teacher grade exam homework library podcast episode channel comment post friend
group repository branch commit server database table query index backup domain certificate password
token session cookie device battery plant garden pet vet medicine dose workout step calorie meal diet
water sleep mood journal habit goal""".split()
NOUNS = list(dict.fromkeys(NOUNS))
ADJECTIVES = """current daily weekly monthly total new old first last next previous main public private
local remote default custom preferred maximum minimum start end full short long primary secondary
home work mobile billing shipping delivery return target source""".split()

# values the user states; strings come from several pools so both words and codes get copied
CITIES = ["Paris", "Berlin", "Tokyo", "Lima", "Oslo", "Cairo", "Boston", "Madrid", "Seoul", "Dublin",
          "Nairobi", "Toronto", "Sydney", "Lisbon", "Vienna", "Denver", "Austin", "Prague", "Hanoi",
          "Quito", "San Francisco", "New York", "Buenos Aires", "Cape Town", "Mexico City", "Rome"]
STATES = ["CA", "NY", "TX", "MA", "WA", "IL", "OR", "CO", "FL"]
PEOPLE = ["Maria", "John", "Aiko", "Omar", "Lena", "Carlos", "Priya", "Tom", "Sofia", "Ivan", "Mei",
          "Lucas", "Amara", "Noah", "Elena", "Ravi", "Clara", "Yusuf", "Anna", "Kofi", "Ben", "Hana"]
THINGS = ["blue lamp", "red bicycle", "green tea", "summer trip", "quarterly report", "birthday party",
          "team lunch", "old laptop", "jazz music", "chess club", "yoga class", "banana bread", "tax form",
          "rainy day", "morning run", "spring sale", "new office", "paper towels", "coffee beans"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
          "October", "November", "December"]
ENUM_POOLS = [["celsius", "fahrenheit"], ["low", "medium", "high"], ["small", "medium", "large"],
              ["asc", "desc"], ["daily", "weekly", "monthly"], ["json", "csv", "xml"], ["red", "green", "blue"],
              ["economy", "business", "first"], ["public", "private"], ["draft", "published", "archived"],
              ["car", "bike", "walk", "train"], ["morning", "afternoon", "evening"], ["en", "fr", "de", "es"]]
STRING_HINTS = ["The {k}.", "The {k} to use.", "Name of the {k}.", "The {k}, as text.", "Which {k}.", ""]
DESCRIPTIONS = ["{V} the {n}.", "{V} a {n} by its details.", "Use this to {v} the {n}.",
                "{V} the {n} for the user.", "Tool that can {v} a {n}.", "{V} {n}s and return the result."]
EXTRA_SENTENCES = ["Returns a JSON object.", "Only call this when the user asks for it.",
                   "The result may take a few seconds.", "Values are case sensitive.",
                   "Fails when a required field is missing.", "Use the exact values the user gives.",
                   "Dates are written as the user wrote them.", "Works for every region.",
                   "The answer includes a status field.", "Numbers are plain JSON numbers."]


# Half the nouns of names and keys are made up on the spot, so copying them from the prompt is the
# only way to write them (a model could memorise a list of a few hundred real words instead).
MADE_UP_SHARE = 0.5
ONSETS = ["b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "kr", "st", "tr", "pl"]
VOWELS = ["a", "e", "i", "o", "u"]
CODAS = ["", "", "n", "r", "s", "l", "x"]


def split_words(words: list[str], split: str) -> list[str]:
    """Every sixth word is held out from training (split="held_out" gives only those)."""
    held = split == "held_out"
    return [w for i, w in enumerate(words) if (i % 6 == 5) == held]


class World:
    """The word lists of one split and the random choices built on them."""

    def __init__(self, rng: random.Random, split: str = "train"):
        self.rng = rng
        self.verbs, self.nouns = split_words(VERBS, split), split_words(NOUNS, split)
        self.adjectives = ADJECTIVES

    # -- names -------------------------------------------------------------------------------

    def made_up(self) -> str:
        """A pronounceable word no list holds ("tovasin"): a model cannot know it, only copy it."""
        return "".join(self.rng.choice(ONSETS) + self.rng.choice(VOWELS) for _ in range(self.rng.randint(2, 3))) + \
            self.rng.choice(CODAS)

    def noun(self) -> str:
        return self.made_up() if self.rng.random() < MADE_UP_SHARE else self.rng.choice(self.nouns)

    def verb(self) -> str:
        return self.made_up() if self.rng.random() < MADE_UP_SHARE / 2 else self.rng.choice(self.verbs)

    def key_words(self) -> list[str]:
        r = self.rng.random()
        if r < 0.55:
            return [self.noun()]
        if r < 0.8:
            return [self.rng.choice(self.adjectives), self.noun()]
        return [self.noun(), self.noun()]

    def tool_words(self) -> list[str]:
        words = [self.verb(), self.noun()]
        if self.rng.random() < 0.3:
            words.insert(1, self.noun())
        return words

    def spelled(self, words: list[str], camel: bool) -> str:
        return words[0] + "".join(w.capitalize() for w in words[1:]) if camel else "_".join(words)

    # -- parameters ---------------------------------------------------------------------------

    def parameter(self, words: list[str]) -> dict:
        """A parameter schema (with the fields the generator needs under private keys)."""
        kind = self.rng.choices(["string", "integer", "number", "boolean", "enum", "array", "object"],
                                [38, 16, 9, 9, 14, 8, 6])[0]
        phrase = " ".join(words)
        schema: dict = {}
        if kind == "enum":
            schema = {"type": "string", "enum": list(self.rng.choice(ENUM_POOLS))}
        elif kind == "array":
            schema = {"type": "array", "items": {"type": "string"}}
        elif kind == "object":
            inner = {}
            for _ in range(self.rng.randint(1, 2)):
                inner_words = [self.noun()]
                inner["_".join(inner_words)] = {"type": self.rng.choice(["string", "integer"])}
            schema = {"type": "object", "properties": inner, "required": list(inner)}
        else:
            schema = {"type": kind}
        if self.rng.random() < 0.6:
            hints = STRING_HINTS if schema["type"] == "string" else [h for h in STRING_HINTS if "text" not in h]
            hint = self.rng.choice(hints).format(k=phrase)
            if hint:
                schema["description"] = hint
        return schema

    def tool(self, n_params: int | None = None, long: bool = False) -> dict:
        words = self.tool_words()
        name = self.spelled(words, camel=self.rng.random() < 0.2)
        verb, noun = words[0], " ".join(words[1:])
        description = self.rng.choice(DESCRIPTIONS).format(V=verb.capitalize(), v=verb, n=noun)
        if long:
            description += " " + " ".join(self.rng.sample(EXTRA_SENTENCES, self.rng.randint(1, 4)))
        properties: dict = {}
        while len(properties) < (n_params or self.rng.choice([1, 1, 2, 2, 2, 3, 3, 4])):
            key_words = self.key_words()
            key = self.spelled(key_words, camel=name != "_".join(words) and self.rng.random() < 0.7)
            if key not in properties:
                properties[key] = self.parameter(key_words)
        keys = list(properties)
        required = [k for k in keys if self.rng.random() < 0.6] or [keys[0]]
        return function(name, description, properties, required)

    # -- values and how a user states them ----------------------------------------------------

    def string_value(self) -> str:
        pool = self.rng.randrange(5)
        if pool == 0:
            return self.rng.choice(CITIES)
        if pool == 1:
            return self.rng.choice(PEOPLE)
        if pool == 2:
            return self.rng.choice(THINGS)
        if pool == 3:
            return f"{self.rng.choice(MONTHS)} {self.rng.randint(1, 28)}"
        return self.rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") + self.rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ") + \
            str(self.rng.randint(10, 9999))

    def value(self, schema: dict):
        kind = schema.get("type")
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        if kind == "integer":
            return self.rng.randint(1, 500)
        if kind == "number":
            return round(self.rng.uniform(0.5, 999), self.rng.choice([1, 2]))
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "array":
            return self.rng.sample(CITIES + PEOPLE + THINGS, self.rng.randint(1, 3))
        if kind == "object":
            return {k: self.value(v) for k, v in schema["properties"].items()}
        return self.string_value()

    def stated(self, key: str, schema: dict, value) -> str:
        """The user's words for one argument: the parameter's words next to the value."""
        words = key_phrase(key)
        kind = schema.get("type")
        if kind == "boolean":
            if value:
                return self.rng.choice([f"with {words} on", f"{words}: yes", f"{words} set to true", f"{words} enabled"])
            return self.rng.choice([f"with {words} off", f"{words}: no", f"{words} set to false", f"{words} disabled"])
        if kind == "array":
            items = value[0] if len(value) == 1 else ", ".join(value[:-1]) + " and " + value[-1]
            return self.rng.choice([f"{words} {items}", f"with {words}: {items}", f"for the {words} {items}"])
        if kind == "object":
            inner = " and ".join(f"{key_phrase(k)} {v}" for k, v in value.items())
            return self.rng.choice([f"{words} with {inner}", f"the {words} ({inner})"])
        if kind == "string" and "enum" not in schema and " " in str(value) and self.rng.random() < 0.5:
            value = f'"{value}"'
        return self.rng.choice([f"{words} {value}", f"{words}: {value}", f"{words} is {value}",
                                f"the {words} {value}", f"{words} = {value}"])


def key_phrase(key: str) -> str:
    """`check_in_date` / `checkInDate` -> "check in date"."""
    out = []
    for ch in key:
        if ch == "_":
            out.append(" ")
        elif ch.isupper():
            out.append(" " + ch.lower())
        else:
            out.append(ch)
    return "".join(out).strip()


def function(name: str, description: str, properties: dict, required: list[str]) -> dict:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required}}}


def action_phrase(rng: random.Random, tool: dict) -> str:
    """How a user asks for a tool's action: its name's words, sometimes its description."""
    words = key_phrase(tool["function"]["name"])
    verb, _, rest = words.partition(" ")
    return rng.choice([f"Please {words}", f"{verb.capitalize()} the {rest}", f"Can you {words}",
                       f"I need to {words}", f"{words.capitalize()}", f"Use {tool['function']['name']} to {words}"])


def request(world: World, tool: dict) -> tuple[str, dict]:
    """(the user's request, the arguments of the call that serves it) for one random tool."""
    rng = world.rng
    parameters = tool["function"]["parameters"]
    properties, required = parameters["properties"], set(parameters["required"])
    arguments = {}
    for key, schema in properties.items():  # the call lists the keys in the schema's order
        if key in required or rng.random() < 0.4:
            arguments[key] = world.value(schema)
    pieces = [world.stated(k, properties[k], v) for k, v in arguments.items()]
    if len(pieces) > 1 and rng.random() < 0.3:  # users do not always keep the schema's order
        rng.shuffle(pieces)
    joined = pieces[0] if len(pieces) == 1 else ", ".join(pieces[:-1]) + " and " + pieces[-1]
    connector = "" if joined.startswith(("with ", "and ")) else " " + rng.choice(["with", "for", "using", ":"])
    ask = f"{action_phrase(rng, tool)}{connector} {joined}"
    ask = ask.replace(" :", ":") + rng.choice([".", "?", "", " please."])
    return ask, arguments


WEATHER_NAMES = ["get_weather", "get_current_weather", "current_weather", "weather_lookup", "fetch_weather",
                 "getWeather", "get_temperature", "weather"]
WEATHER_ASKS = ["What's the weather like in {c}?", "What is the weather in {c} today?", "How warm is it in {c}?",
                "weather in {c}", "Is it cold in {c} right now?", "Tell me the current weather in {c}.",
                "What's the temperature in {c}?", "How is the weather in {c}?"]


def weather_tool(rng: random.Random) -> dict:
    """The docs' first example, in its variants: a weather tool with a place and maybe a unit enum."""
    name = rng.choice(WEATHER_NAMES)
    key = rng.choice(["location", "location", "city", "place"])
    example = rng.choice(["San Francisco, CA", "Paris, France", "Boston, MA", "Tokyo"])
    properties = {key: {"type": "string", "description": rng.choice([
        f"City and state, e.g., '{example}'", f"The city and state, e.g. {example}", "The city name", f"The {key}"])}}
    if rng.random() < 0.8:
        properties["unit"] = {"type": "string", "enum": rng.choice([["celsius", "fahrenheit"], ["fahrenheit", "celsius"]])}
    required = [key] + (["unit"] if "unit" in properties and rng.random() < 0.5 else [])
    description = rng.choice(["Get the current weather in a given location", "Get the current weather for a city.",
                              "Look up the weather."])
    return function(name, description, properties, required)


def weather_request_for(rng: random.Random, tool: dict) -> tuple[str, dict]:
    """(user request, arguments) for a weather tool: the place copied from the question, the unit
    when the user names one, else the first allowed unit when the tool requires it."""
    parameters = tool["function"]["parameters"]
    key = next(iter(parameters["properties"]))
    city = rng.choice(CITIES)
    if rng.random() < 0.3:
        city = f"{city}, {rng.choice(STATES)}"
    ask = rng.choice(WEATHER_ASKS).format(c=city)
    arguments = {key: city}
    unit_schema = parameters["properties"].get("unit")
    if unit_schema:
        unit = rng.choice(["celsius", "fahrenheit", None, None])
        if unit:
            ask = ask.rstrip("?.") + f" in {unit}?"
            arguments["unit"] = unit
        elif "unit" in parameters["required"]:
            arguments["unit"] = unit_schema["enum"][0]
    return ask, arguments


def weather_request(rng: random.Random) -> tuple[dict, str, dict]:
    tool = weather_tool(rng)
    return (tool, *weather_request_for(rng, tool))


def result_for(world: World, arguments: dict) -> tuple[dict, str]:
    """A tool result (what the application returns) and the assistant's sentence about it."""
    rng = world.rng
    result = {}
    for _ in range(rng.randint(1, 3)):
        key = world.spelled(world.key_words(), camel=False)
        result[key] = rng.choice([world.string_value(), rng.randint(0, 999), rng.choice(["ok", "done", "pending"])])
    said = ", ".join(f"{key_phrase(k)} {v}" for k, v in result.items())
    return result, rng.choice([f"Here is the result: {said}.", f"The tool says: {said}.", f"Done. {said[0].upper()}{said[1:]}."])


def dumps(value) -> str:
    return json.dumps(value, ensure_ascii=False)
