"""Keyword tables that turn a few words of a concept into a concrete visual world.

The heuristic planner and cinematographer share these so that a storyboard planned offline
and enhanced offline draws on one palette, setting and cast. Everything here is data plus
small pure lookups; no randomness (choices that need variety hash the text they are about).
"""

from __future__ import annotations

import hashlib
import re
from functools import cache

from pydantic import BaseModel, ConfigDict

__all__ = [
    "FALLBACK_THEME",
    "THEMES",
    "Location",
    "Person",
    "Theme",
    "brand_words",
    "find_location",
    "find_person",
    "find_time_of_day",
    "match_theme",
    "product_phrase",
    "stable_choice",
    "tokens",
]


class Location(BaseModel):
    """A setting described for a prompt, its short name and the surface products stand on."""

    model_config = ConfigDict(frozen=True)

    description: str
    short: str
    surface: str
    props: str
    textures: tuple[str, ...] = ()
    indoor: bool = True
    preposition: str = "in"


class Theme(BaseModel):
    """The visual world a concept keyword implies. ``{product}`` is filled with the product."""

    model_config = ConfigDict(frozen=True)

    name: str
    keywords: tuple[str, ...]
    products: tuple[str, ...]
    default_product: str
    product_object: str
    product_marker: str
    finish: str
    location: Location
    palette: tuple[str, ...]
    style: str
    brand_keywords: tuple[str, ...]
    materials: tuple[str, ...]
    mood: str
    default_time: str
    role: str
    pronoun: str
    age: str
    appearance: str
    group_look: str
    detail: str
    process: str
    human_action: str
    lifestyle: str
    reaction: str
    ritual: str
    packaging: str


# fmt: off
THEMES: tuple[Theme, ...] = (
    Theme(
        name="coffee",
        keywords=(
            "coffee", "espresso", "latte", "cappuccino", "cafe", "café", "barista", "brew", "roast",
            "roastery", "beans",
        ),
        products=("coffee", "espresso", "latte", "cappuccino", "cold brew", "beans"),
        default_product="artisan coffee",
        product_object="a hand-thrown ceramic mug of {product}",
        product_marker="{product} in a hand-thrown cream ceramic mug with a matte glaze",
        finish="matte-glazed hand-thrown ceramic",
        location=Location(
            description="a modern minimalist kitchen with white oak counters",
            short="kitchen",
            surface="white oak counter",
            props="a copper pour-over kettle and a folded linen tea towel",
        ),
        palette=("espresso brown", "cream", "caramel", "soft gold"),
        style="warm editorial lifestyle photography",
        brand_keywords=("handcrafted", "small-batch", "slow ritual"),
        materials=("hand-thrown ceramic", "white oak", "linen"),
        mood="calm, intimate and inviting",
        default_time="morning",
        role="woman",
        pronoun="her",
        age="early thirties",
        appearance="chestnut brown hair in a loose bun, wearing a cream knit sweater",
        group_look="in cream and oat-coloured knitwear",
        detail="{product} being poured into a hand-thrown ceramic mug, steam curling above the crema",
        process="hands grinding whole roasted beans in a brass hand grinder",
        human_action="wraps both hands around the mug and takes the first sip of {product}, eyes half closed",
        lifestyle="carries the mug of {product} to the window and looks out at the street",
        reaction="breathing in the aroma with a slow smile",
        ritual="setting the mug down beside an open notebook",
        packaging="a kraft paper bag of {product} beans stamped with the roaster's seal",
    ),
    Theme(
        name="tech",
        keywords=(
            "tech", "technology", "app", "software", "startup", "smartphone", "phone", "laptop",
            "gadget", "device", "digital", "ai", "headphones", "smartwatch", "wearable",
        ),
        products=(
            "smartphone", "phone", "laptop", "headphones", "smartwatch", "tablet", "earbuds", "app",
            "device",
        ),
        default_product="smartphone",
        product_object="the {product}",
        product_marker="{product} with a brushed aluminium frame and a cobalt blue accent light",
        finish="brushed aluminium with a glossy glass screen",
        location=Location(
            description="a bright open-plan studio office with glass partitions and concrete floors",
            short="studio office",
            surface="pale concrete desk",
            props="a mechanical keyboard and a sketchbook of wireframes",
        ),
        palette=("cobalt blue", "graphite grey", "white", "electric cyan"),
        style="clean commercial product photography",
        brand_keywords=("innovative", "effortless", "connected"),
        materials=("brushed aluminium", "glass", "concrete"),
        mood="focused and optimistic",
        default_time="late morning",
        role="designer",
        pronoun="his",
        age="late twenties",
        appearance="short black hair and round glasses, wearing a charcoal hoodie",
        group_look="in charcoal and navy casual workwear",
        detail="the {product} lit by a thin cobalt blue edge light, every seam crisp",
        process="fingers unboxing the {product} beside a laptop",
        human_action="tests the {product} once more and leans back, relieved",
        lifestyle="walks through the office with the {product}, glancing at a notification",
        reaction="looking up from the {product} with a quick grin",
        ritual="setting the {product} down next to the keyboard",
        packaging="the matte white box of the {product} with the lid lifted",
    ),
    Theme(
        name="luxury",
        keywords=(
            "luxury", "premium", "watch", "perfume", "fragrance", "jewelry", "jewellery", "diamond",
            "couture", "elegant", "exclusive",
        ),
        products=(
            "watch", "perfume", "fragrance", "necklace", "ring", "handbag", "jewelry", "jewellery",
            "bracelet",
        ),
        default_product="luxury watch",
        product_object="the {product}",
        product_marker="{product} with polished gold details on deep black",
        finish="polished gold with a mirror finish",
        location=Location(
            description="a dim boutique interior with black marble walls",
            short="boutique",
            surface="black marble plinth",
            props="a folded black velvet cloth and a crystal decanter",
        ),
        palette=("deep black", "polished gold", "champagne", "ivory"),
        style="high-end editorial still life photography",
        brand_keywords=("timeless", "refined", "exclusive"),
        materials=("black marble", "velvet", "polished gold"),
        mood="dramatic, refined and luxurious",
        default_time="evening",
        role="woman",
        pronoun="her",
        age="early forties",
        appearance="a sleek dark bob, wearing a black silk dress",
        group_look="in black eveningwear",
        detail="the {product} catching a sliver of light along its polished gold details",
        process="gloved hands placing the {product} on black velvet",
        human_action="lifts the {product} toward the light and turns it slowly",
        lifestyle="steps out of a town car, the {product} glinting in her hand",
        reaction="glancing down at the {product} with a composed half smile",
        ritual="lifting the {product} from its case",
        packaging="the lacquered black case of the {product} opening to reveal an ivory lining",
    ),
    Theme(
        name="nature",
        keywords=(
            "nature", "outdoor", "outdoors", "forest", "mountain", "hiking", "hike", "eco",
            "sustainable", "organic", "garden", "adventure", "camping", "trail", "wild",
        ),
        products=("backpack", "boots", "tent", "jacket", "bottle", "water bottle"),
        default_product="trail backpack",
        product_object="the {product}",
        product_marker="{product} in olive waxed canvas with leather trim",
        finish="weathered waxed canvas",
        location=Location(
            description="a misty pine forest trail with moss-covered stones",
            short="forest trail",
            surface="moss-covered boulder",
            props="ferns, a tin camp mug and a folded map",
            indoor=False,
            preposition="on",
        ),
        palette=("forest green", "moss", "earth brown", "sky blue"),
        style="naturalistic documentary photography",
        brand_keywords=("sustainable", "rugged", "free"),
        materials=("waxed canvas", "wet stone", "pine bark"),
        mood="fresh, expansive and calm",
        default_time="golden hour",
        role="hiker",
        pronoun="her",
        age="late twenties",
        appearance="a sun-bleached braid, wearing an olive rain jacket",
        group_look="in olive and rust outdoor layers",
        detail="dew on the {product}, pine needles caught in its seams",
        process="hands packing the {product} on a fallen log",
        human_action="pauses on a ridge with the {product} and looks across the valley",
        lifestyle="crosses a stream on stepping stones with the {product}",
        reaction="catching her breath with a wide smile",
        ritual="unpacking a tin camp mug beside the {product}",
        packaging="the {product} resting against a pine trunk beside the tent",
    ),
    Theme(
        name="fitness",
        keywords=(
            "fitness", "gym", "workout", "running", "runner", "sport", "sports", "athlete",
            "training", "yoga", "sneakers", "shoes", "marathon", "energy",
        ),
        products=("sneakers", "running shoes", "trainers", "shoes", "leggings", "yoga mat"),
        default_product="running shoes",
        product_object="the {product}",
        product_marker="{product} in charcoal with neon orange accents",
        finish="charcoal with a reflective neon orange trim",
        location=Location(
            description="an industrial gym with raw concrete walls and tall steel windows",
            short="gym",
            surface="rubber gym floor",
            props="chalk dust, a steel kettlebell and a coiled jump rope",
        ),
        palette=("charcoal", "neon orange", "white", "steel grey"),
        style="high-contrast sports photography",
        brand_keywords=("relentless", "performance", "unstoppable"),
        materials=("knit mesh", "rubber", "concrete"),
        mood="energetic and determined",
        default_time="dawn",
        role="athlete",
        pronoun="his",
        age="early thirties",
        appearance="a close-cropped fade, wearing a black training tee",
        group_look="in black and orange training gear",
        detail="the {product} under hard side light, charcoal and neon orange against wet concrete",
        process="hands setting the {product} down on a wooden bench beside a towel",
        human_action="pushes through the final stretch with the {product}, jaw set",
        lifestyle="stretches against a railing before the run, the {product} close at hand",
        reaction="bent over, catching his breath, a grin breaking through",
        ritual="tapping his watch before the first step",
        packaging="the {product} in its orange box on the gym floor",
    ),
    Theme(
        name="food",
        keywords=(
            "food", "restaurant", "pizza", "burger", "bakery", "bread", "chef", "dessert",
            "chocolate", "snack", "pasta", "kitchen",
        ),
        products=(
            "pizza", "burger", "bread", "croissant", "chocolate", "pasta", "salad", "cake",
        ),
        default_product="wood-fired pizza",
        product_object="the {product}",
        product_marker="{product} served on a flour-dusted walnut board",
        finish="blistered golden crust",
        location=Location(
            description="a rustic restaurant kitchen with a wood-fired brick oven",
            short="restaurant kitchen",
            surface="flour-dusted walnut board",
            props="bunches of basil, a cast iron pan and a linen napkin",
        ),
        palette=("tomato red", "basil green", "warm wheat", "cream"),
        style="appetising editorial food photography",
        brand_keywords=("fresh", "authentic", "made by hand"),
        materials=("flour-dusted wood", "cast iron", "linen"),
        mood="warm and convivial",
        default_time="evening",
        role="chef",
        pronoun="her",
        age="late thirties",
        appearance="dark curly hair tied back, wearing a white apron",
        group_look="in aprons and rolled sleeves",
        detail="steam rising from the {product}, the surface glistening",
        process="flour-covered hands shaping dough on the board",
        human_action="slides the {product} onto the board and tastes it, nodding",
        lifestyle="carries the {product} to a long table of friends",
        reaction="closing her eyes at the first bite",
        ritual="tearing a fresh basil leaf over the {product}",
        packaging="a kraft takeaway box of {product} tied with string",
    ),
    Theme(
        name="beauty",
        keywords=(
            "skincare", "beauty", "cosmetics", "makeup", "serum", "moisturiser", "lotion", "spa",
        ),
        products=(
            "skincare", "serum", "moisturiser", "moisturizer", "face cream", "lotion", "face oil",
        ),
        default_product="face serum",
        product_object="a frosted glass bottle of {product}",
        product_marker="{product} in a frosted glass dropper bottle with a rose gold cap",
        finish="frosted glass with a rose gold cap",
        location=Location(
            description="a sunlit bathroom vanity with white marble counters",
            short="bathroom",
            surface="white marble counter",
            props="a eucalyptus sprig and a folded waffle towel",
        ),
        palette=("blush pink", "ivory", "rose gold", "soft beige"),
        style="soft-focus beauty editorial photography",
        brand_keywords=("radiant", "gentle", "clean"),
        materials=("frosted glass", "marble", "satin"),
        mood="fresh, serene and intimate",
        default_time="morning",
        role="woman",
        pronoun="her",
        age="mid-twenties",
        appearance="dark wavy hair and dewy skin, wearing an ivory robe",
        group_look="in ivory and blush loungewear",
        detail="a single drop of {product} falling from the glass dropper",
        process="fingertips pressing {product} into the back of a hand",
        human_action="smooths the {product} across her cheek in the mirror",
        lifestyle="steps onto a balcony in the ivory robe, skin glowing",
        reaction="touching her cheek with a small smile",
        ritual="lining the {product} up beside a eucalyptus sprig",
        packaging="the blush pink box of {product} beside its frosted bottle",
    ),
    Theme(
        name="automotive",
        keywords=(
            "car", "cars", "vehicle", "automotive", "ev", "drive", "driving", "road", "suv",
            "motorcycle",
        ),
        products=("car", "suv", "ev", "motorcycle", "vehicle"),
        default_product="electric car",
        product_object="the {product}",
        product_marker="{product} in metallic silver with slim LED headlights",
        finish="metallic silver paint with mirror-clean reflections",
        location=Location(
            description="a winding coastal road above the sea",
            short="coastal road",
            surface="wet asphalt",
            props="guard rails, cliffs and distant headlands",
            indoor=False,
            preposition="on",
        ),
        palette=("metallic silver", "asphalt grey", "deep navy", "sodium orange"),
        style="cinematic automotive photography",
        brand_keywords=("precise", "electric", "freedom"),
        materials=("brushed metal", "wet asphalt", "carbon fibre"),
        mood="sleek and powerful",
        default_time="dusk",
        role="driver",
        pronoun="her",
        age="mid-thirties",
        appearance="short auburn hair, wearing a tan leather jacket",
        group_look="in tan and navy travel clothes",
        detail="the LED headlight of the {product} blinking on, rain beading on the silver paint",
        process="a hand on the stitched leather steering wheel of the {product}",
        human_action="steers the {product} through a bend, one hand on the wheel, relaxed",
        lifestyle="leans against the {product} at a lookout, watching the sea",
        reaction="glancing at the open road with a quiet smile",
        ritual="plugging the {product} into a roadside charger",
        packaging="the key card of the {product} resting on the dashboard",
    ),
)

FALLBACK_THEME = Theme(
    name="general",
    keywords=(),
    products=(),
    default_product="the product",
    product_object="the {product}",
    product_marker="{product}, clean matte finish, shown at its true colours",
    finish="clean matte finish",
    location=Location(
        description="a bright contemporary loft with light oak floors and white walls",
        short="loft",
        surface="light oak table",
        props="a potted olive tree and a stack of linen-bound books",
    ),
    palette=("warm white", "charcoal", "muted teal", "soft amber"),
    style="clean cinematic commercial photography",
    brand_keywords=("authentic", "modern"),
    materials=("matte ceramic", "light oak", "linen"),
    mood="confident and inviting",
    default_time="morning",
    role="person",
    pronoun="their",
    age="early thirties",
    appearance="short dark hair, wearing a navy overshirt",
    group_look="in navy and white casual clothes",
    detail="the {product} turning slowly to show its edges and finish",
    process="hands unboxing the {product} on the table",
    human_action="picks up the {product} and turns it over, curious",
    lifestyle="uses the {product} at the window, relaxed",
    reaction="looking at the {product} with a slow smile",
    ritual="placing the {product} back on the table",
    packaging="the {product} beside its simple white packaging",
)

#: Location words in a concept or scene, and the setting they call for.
LOCATIONS: dict[str, Location] = {
    "kitchen": Location(
        description="a modern minimalist kitchen with white oak counters",
        short="kitchen",
        surface="white oak counter",
        props="a copper pour-over kettle and a folded linen tea towel",
        textures=("white oak", "hand-thrown ceramic", "linen"),
    ),
    "cafe": Location(
        description="a small artisan café with a marble bar and exposed brick",
        short="café",
        surface="marble bar",
        props="a chalkboard menu and a row of glass jars of beans",
        textures=("veined marble", "exposed brick", "glass"),
    ),
    "café": Location(
        description="a small artisan café with a marble bar and exposed brick",
        short="café",
        surface="marble bar",
        props="a chalkboard menu and a row of glass jars of beans",
        textures=("veined marble", "exposed brick", "glass"),
    ),
    "barista": Location(
        description="a small artisan café with a marble bar and exposed brick",
        short="café",
        surface="marble bar",
        props="a chalkboard menu and a row of glass jars of beans",
        textures=("veined marble", "exposed brick", "glass"),
    ),
    "coffee shop": Location(
        description="a small artisan café with a marble bar and exposed brick",
        short="café",
        surface="marble bar",
        props="a chalkboard menu and a row of glass jars of beans",
        textures=("veined marble", "exposed brick", "glass"),
    ),
    "office": Location(
        description="a bright open-plan office with glass partitions",
        short="office",
        surface="pale oak desk",
        props="a monitor arm, a potted fern and a notebook",
        textures=("glass", "pale oak", "felt"),
    ),
    "desk": Location(
        description="a tidy home-office desk beside a tall window",
        short="home office",
        surface="walnut desk",
        props="a brass desk lamp, a notebook and a fountain pen",
        textures=("walnut", "brass", "paper"),
    ),
    "beach": Location(
        description="a wide sandy beach with low dunes and sea grass",
        short="beach",
        surface="driftwood log",
        props="a striped towel, a canvas tote and footprints in the sand",
        textures=("driftwood", "fine sand", "woven cotton"),
        indoor=False,
        preposition="on",
    ),
    "city": Location(
        description="a rain-slicked city street lined with lit shopfronts",
        short="city street",
        surface="stone ledge",
        props="puddles reflecting shop signs and a parked bicycle",
        textures=("wet asphalt", "brick", "glass"),
        indoor=False,
        preposition="on",
    ),
    "street": Location(
        description="a rain-slicked city street lined with lit shopfronts",
        short="city street",
        surface="stone ledge",
        props="puddles reflecting shop signs and a parked bicycle",
        textures=("wet asphalt", "brick", "glass"),
        indoor=False,
        preposition="on",
    ),
    "urban": Location(
        description="a rain-slicked city street lined with lit shopfronts",
        short="city street",
        surface="stone ledge",
        props="puddles reflecting shop signs and a parked bicycle",
        textures=("wet asphalt", "brick", "glass"),
        indoor=False,
        preposition="on",
    ),
    "forest": Location(
        description="a misty pine forest trail with moss-covered stones",
        short="forest trail",
        surface="moss-covered boulder",
        props="ferns, a tin camp mug and a folded map",
        textures=("pine bark", "wet stone", "moss"),
        indoor=False,
        preposition="on",
    ),
    "mountain": Location(
        description="an alpine ridge above the tree line",
        short="ridge",
        surface="granite outcrop",
        props="a cairn of stones and low alpine flowers",
        textures=("granite", "lichen", "ripstop nylon"),
        indoor=False,
        preposition="on",
    ),
    "gym": Location(
        description="an industrial gym with raw concrete walls and tall steel windows",
        short="gym",
        surface="rubber gym floor",
        props="chalk dust, a steel kettlebell and a coiled jump rope",
        textures=("concrete", "rubber", "knurled steel"),
    ),
    "home": Location(
        description="a sunlit living room with linen sofas and oak floors",
        short="living room",
        surface="oak coffee table",
        props="a wool throw, a stack of books and a ceramic vase",
        textures=("linen", "oak", "wool"),
    ),
    "studio": Location(
        description="a photo studio with a seamless warm grey paper backdrop",
        short="studio",
        surface="matte grey plinth",
        props="a pale grey sweep and two paper reflectors",
        textures=("seamless paper", "matte plaster", "brushed steel"),
    ),
    "rooftop": Location(
        description="a city rooftop terrace with string lights and planters",
        short="rooftop",
        surface="teak table",
        props="potted olive trees and a folded wool blanket",
        textures=("teak", "terracotta", "wool"),
        indoor=False,
        preposition="on",
    ),
    "bar": Location(
        description="a dim cocktail bar with a brass-topped counter",
        short="bar",
        surface="brass-topped counter",
        props="cut-crystal glasses and a row of amber bottles",
        textures=("brass", "cut crystal", "leather"),
    ),
    "road": Location(
        description="a winding coastal road above the sea",
        short="coastal road",
        surface="wet asphalt",
        props="guard rails, cliffs and distant headlands",
        textures=("wet asphalt", "brushed metal", "carbon fibre"),
        indoor=False,
        preposition="on",
    ),
    "garden": Location(
        description="a walled kitchen garden with raised cedar beds",
        short="garden",
        surface="weathered potting bench",
        props="terracotta pots, twine and a watering can",
        textures=("terracotta", "cedar", "wet soil"),
        indoor=False,
    ),
    "bathroom": Location(
        description="a sunlit bathroom vanity with white marble counters",
        short="bathroom",
        surface="white marble counter",
        props="a eucalyptus sprig and a folded waffle towel",
        textures=("white marble", "frosted glass", "waffle cotton"),
    ),
    "park": Location(
        description="a leafy city park with a gravel path and benches",
        short="park",
        surface="park bench",
        props="fallen leaves and a wrought iron lamp post",
        textures=("gravel", "wrought iron", "oak leaves"),
        indoor=False,
    ),
}

#: Person words in a concept: (role, pronoun, plural).
_PEOPLE: dict[str, tuple[str, str | None, bool]] = {
    "woman": ("woman", "her", False),
    "women": ("woman", "her", False),
    "man": ("man", "his", False),
    "men": ("man", "his", False),
    "professional": ("professional", None, False),
    "professionals": ("professional", None, False),
    "barista": ("barista", None, False),
    "baristas": ("barista", None, False),
    "chef": ("chef", None, False),
    "chefs": ("chef", None, False),
    "athlete": ("athlete", None, False),
    "athletes": ("athlete", None, False),
    "runner": ("runner", None, False),
    "runners": ("runner", None, False),
    "student": ("student", None, False),
    "students": ("student", None, False),
    "mother": ("mother", "her", False),
    "mom": ("mother", "her", False),
    "mum": ("mother", "her", False),
    "father": ("father", "his", False),
    "dad": ("father", "his", False),
    "designer": ("designer", None, False),
    "developer": ("developer", None, False),
    "traveler": ("traveller", None, False),
    "traveller": ("traveller", None, False),
    "travelers": ("traveller", None, False),
    "travellers": ("traveller", None, False),
    "hiker": ("hiker", None, False),
    "hikers": ("hiker", None, False),
    "gamer": ("gamer", None, False),
    "gamers": ("gamer", None, False),
    "family": ("young family", "their", True),
    "families": ("young family", "their", True),
    "couple": ("couple", "their", True),
    "couples": ("couple", "their", True),
    "friends": ("group of friends", "their", True),
}

#: Time-of-day words in a concept and the canonical time the storyboard uses.
_TIMES: tuple[tuple[str, str], ...] = (
    ("golden hour", "golden hour"),
    ("sunset", "golden hour"),
    ("sunrise", "dawn"),
    ("dawn", "dawn"),
    ("breakfast", "morning"),
    ("morning", "morning"),
    ("mornings", "morning"),
    ("brunch", "late morning"),
    ("midday", "midday"),
    ("noon", "midday"),
    ("lunch", "midday"),
    ("afternoon", "afternoon"),
    ("dusk", "dusk"),
    ("twilight", "dusk"),
    ("evening", "evening"),
    ("evenings", "evening"),
    ("dinner", "evening"),
    ("nightlife", "night"),
    ("night", "night"),
    ("nights", "night"),
    ("midnight", "night"),
    ("late-night", "night"),
)

#: Words a brand would want associated with itself, taken from the concept when present.
_BRANDABLE = frozenset(
    [
        "artisan", "artisanal", "luxury", "premium", "organic", "handmade", "handcrafted",
        "sustainable", "eco", "modern", "minimalist", "bold", "fresh", "elegant", "playful",
        "rugged", "sleek", "vintage", "retro", "futuristic", "cozy", "cosy", "healthy", "natural",
        "authentic", "local", "innovative", "smart", "clean", "pure", "vibrant", "dramatic",
        "timeless", "refined", "effortless", "fast", "powerful", "gentle", "radiant", "small-batch",
        "independent", "crafted", "classic", "iconic", "electric", "wireless",
    ]
)

#: Words that describe the ad, not the product.
_GENERIC = frozenset(
    [
        "advertisement", "advert", "ad", "ads", "commercial", "video", "campaign", "promo",
        "promotion", "showcase", "launch", "spot", "storyboard", "product", "products", "brand",
        "story", "film", "teaser", "new",
    ]
)
#: Last words of a phrase that name a business or an occasion, not a product.
_NOT_PRODUCT = frozenset(
    [
        "startup", "startups", "company", "brand", "business", "agency", "service", "services",
        "experience", "lifestyle", "story", "journey", "life", "morning", "mornings", "night",
        "nights", "day", "days", "weekend", "trip", "season",
    ]
)
_BREAK = frozenset(
    [
        "that", "which", "who", "for", "with", "to", "in", "on", "at", "from", "by", "and", "or",
        "your", "our", "their", "its", "is", "are", "will", "can", "helps", "makes", "gives",
        "starts", "brings", "keeps",
    ]
)

# fmt: on


def tokens(text: str) -> list[str]:
    """Lowercase words of ``text``, hyphenated words kept whole."""
    return re.findall(r"[a-zà-ÿ0-9][a-zà-ÿ0-9'-]*", text.lower())


@cache
def phrase_pattern(phrase: str) -> re.Pattern[str]:
    """``phrase`` as a whole word or words (compiled once: the tables are matched constantly)."""
    return re.compile(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])")


def has_phrase(text: str, phrase: str) -> bool:
    return phrase_pattern(phrase).search(text) is not None


def match_theme(text: str) -> Theme:
    """The theme ``text`` mentions most (a product counts double); ties go to the earlier theme."""
    lowered = text.lower()
    best, best_hits = FALLBACK_THEME, 0
    for theme in THEMES:
        hits = sum(has_phrase(lowered, k) for k in theme.keywords) + sum(
            2 * has_phrase(lowered, p) for p in theme.products
        )
        if hits > best_hits:
            best, best_hits = theme, hits
    return best


def find_time_of_day(text: str) -> str | None:
    """The canonical time of day ``text`` names, if any (first listed wins)."""
    lowered = text.lower()
    for word, canonical in _TIMES:
        if has_phrase(lowered, word):
            return canonical
    return None


def find_location(text: str) -> Location | None:
    """The setting for the first place ``text`` names, if it names one we know."""
    lowered = text.lower()
    found = []
    for word, location in LOCATIONS.items():
        match = phrase_pattern(word).search(lowered)
        if match:
            found.append((match.start(), location))
    return min(found, key=lambda pair: pair[0])[1] if found else None


class Person(BaseModel):
    """The storyboard's recurring person, described concretely enough to draw twice alike."""

    model_config = ConfigDict(frozen=True)

    short: str
    full: str
    pronoun: str


def find_person(concept: str, theme: Theme) -> Person:
    """The person the concept names (or the theme's default), with the theme's look."""
    role, pronoun, plural = theme.role, theme.pronoun, False
    for word in tokens(concept):
        if word in _PEOPLE:
            role, named_pronoun, plural = _PEOPLE[word]
            pronoun = named_pronoun or theme.pronoun
            break
    article = "an" if role[0] in "aeiou" else "a"
    if plural:
        short = f"{article} {role} in their {theme.age}"
        return Person(short=short, full=f"{short}, {theme.group_look}", pronoun="their")
    short = f"{article} {role} in {pronoun} {theme.age}"
    return Person(short=short, full=f"{short} with {theme.appearance}", pronoun=pronoun)


def product_phrase(concept: str, theme: Theme) -> str:
    """The product as the concept names it ("artisan coffee"), or the theme's default.

    Looks in the concept's leading noun phrase (up to the first function word or verb, minus
    words about the ad itself) for a known product, kept with the brand-like adjectives just
    before it ("electric car" from "Electric car road trip"). A phrase that names no known
    product is used as it is unless it names the business rather than a product ("tech
    startup"), where the theme's product stands in.
    """
    chunk: list[str] = []
    for word in tokens(concept):
        if word in ("a", "an", "the") and not chunk:
            continue
        if word in _BREAK or (chunk and word.endswith("ed") and word not in _BRANDABLE):
            break
        chunk.append(word)
    chunk = [w for w in chunk if w not in _GENERIC]
    text = " ".join(chunk)
    known = sorted({p for t in THEMES for p in t.products}, key=len, reverse=True)
    for product in known:
        match = phrase_pattern(product).search(text)
        if match:
            before = text[: match.start()].split()
            adjectives: list[str] = []
            while before and before[-1] in _BRANDABLE and len(adjectives) < 2:
                adjectives.insert(0, before.pop())
            return " ".join([*adjectives, product])
    if not chunk or chunk[-1] in _NOT_PRODUCT:
        return theme.default_product
    return " ".join(chunk[-3:])


def brand_words(concept: str, theme: Theme, limit: int = 4) -> list[str]:
    """Brand keywords: brand-like words of the concept first, then the theme's."""
    words = [w for w in tokens(concept) if w in _BRANDABLE]
    for keyword in theme.brand_keywords:
        if keyword not in words:
            words.append(keyword)
    return list(dict.fromkeys(words))[:limit]


def stable_choice(options: tuple[str, ...] | list[str], *key: str) -> str:
    """One of ``options`` chosen by a hash of ``key``: varied across texts, fixed for one text."""
    digest = hashlib.sha256("\x1f".join(key).encode()).digest()
    return options[int.from_bytes(digest[:4], "big") % len(options)]
