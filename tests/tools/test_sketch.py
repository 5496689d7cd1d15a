"""The offline sketch generator: determinism, seeds, and prompt words that change the frame."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imageforge.tools.base import ImageGenerator
from imageforge.tools.schemas import ImageSize
from imageforge.tools.sketch import (
    SketchGenerator,
    dominant_colors,
    kelvin_to_rgb,
    parse_frame,
    reference_palette,
)

SIZE = ImageSize(width=256, height=256)
GENERATOR = SketchGenerator()


def generate(prompt: str, seeds=(3,), references=(), size=SIZE, negative_prompt=""):
    output = GENERATOR.generate(
        prompt,
        negative_prompt=negative_prompt,
        seeds=list(seeds),
        references=list(references),
        size=size,
    )
    return output.images


def pixels(image) -> np.ndarray:
    return np.asarray(image.image, dtype=np.float64)


def subject_fraction(generated) -> float:
    """Share of pixels painted exactly in the subject's recorded colour."""
    colour = np.array(generated.metadata["subject_color"])
    return float((np.asarray(generated.image, dtype=int) == colour).all(axis=-1).mean())


def test_implements_the_generator_protocol():
    assert isinstance(GENERATOR, ImageGenerator)
    assert (GENERATOR.name, GENERATOR.model) == ("sketch", "sketch-v1")


def test_output_shape_and_record():
    size = ImageSize(width=320, height=176)
    output = GENERATOR.generate("a woman at golden hour", negative_prompt="", seeds=[5, 9], references=[], size=size)
    assert (output.backend, output.model) == ("sketch", "sketch-v1")
    assert output.elapsed_s >= 0
    assert [image.seed for image in output.images] == [5, 9]
    for image in output.images:
        assert image.image.mode == "RGB" and image.image.size == (320, 176)
        assert image.metadata["seed"] == image.seed
        assert image.metadata["time_of_day"] == "golden hour"


def test_deterministic_byte_for_byte():
    red = Image.new("RGB", (32, 32), (200, 30, 30))
    first = generate("close-up of a barista, rule of thirds, 3200K", seeds=[1, 2], references=[red])
    second = generate("close-up of a barista, rule of thirds, 3200K", seeds=[1, 2], references=[red])
    assert [i.image.tobytes() for i in first] == [i.image.tobytes() for i in second]
    assert [i.metadata for i in first] == [i.metadata for i in second]


def test_batch_equals_alone():
    batch = generate("a mug of coffee in the morning", seeds=[11, 12, 13])
    alone = generate("a mug of coffee in the morning", seeds=[12])
    assert batch[1].image.tobytes() == alone[0].image.tobytes()


def test_different_seeds_differ():
    a, b = generate("a runner in a park at midday", seeds=[1, 2])
    assert np.abs(pixels(a) - pixels(b)).mean() > 3.0


def test_shot_type_changes_subject_scale():
    prompt = "{shot} of a woman in a red coat, studio"
    fractions = {
        shot: subject_fraction(generate(prompt.format(shot=shot))[0])
        for shot in (
            "extreme close-up",
            "close-up",
            "medium shot",
            "full body",
            "wide shot",
            "establishing shot",
        )
    }
    values = list(fractions.values())
    assert values == sorted(values, reverse=True), fractions
    assert fractions["close-up"] > 5 * fractions["wide shot"]
    close = generate(prompt.format(shot="close-up"))[0].metadata["subject_scale"]
    wide = generate(prompt.format(shot="wide shot"))[0].metadata["subject_scale"]
    assert close > 3 * wide


def test_night_is_darker_and_bluer_than_morning():
    morning = pixels(generate("a wide shot of a street in the morning")[0])
    night = pixels(generate("a wide shot of a street at night")[0])
    assert night.mean() < morning.mean() - 40
    night_rgb = night.mean(axis=(0, 1))
    assert night_rgb[2] > night_rgb[0]  # blue over red at night


def test_colour_temperature_warms_the_frame():
    warm = pixels(generate("wide shot, grey backdrop, 2700K")[0]).mean(axis=(0, 1))
    cool = pixels(generate("wide shot, grey backdrop, 9000K")[0]).mean(axis=(0, 1))
    assert warm[0] - warm[2] > cool[0] - cool[2] + 20
    meta = generate("wide shot, warm 3,200 K key light")[0].metadata
    assert (meta["color_temperature_k"], meta["temperature_source"]) == (3200, "prompt")


def test_light_direction_brightens_that_side():
    left = pixels(generate("wide shot, grey backdrop, soft light from the left")[0])
    right = pixels(generate("wide shot, grey backdrop, soft light from the right")[0])
    # Top band (backdrop only): the lit side is brighter.
    assert left[:40, :64].mean() > left[:40, -64:].mean() + 15
    assert right[:40, -64:].mean() > right[:40, :64].mean() + 15


def test_reference_palette_pulls_mean_colour_toward_it():
    red = np.array([200.0, 30.0, 30.0])
    reference = Image.new("RGB", (64, 64), tuple(int(v) for v in red))
    prompt = "wide shot of a woman in a park, morning"
    plain = pixels(generate(prompt)[0]).mean(axis=(0, 1))
    pulled_image = generate(prompt, references=[reference])[0]
    pulled = pixels(pulled_image).mean(axis=(0, 1))
    assert np.linalg.norm(pulled - red) < np.linalg.norm(plain - red) - 20
    assert pulled_image.metadata["reference_palette"][0]["rgb"] == [200, 30, 30]


def test_chained_frames_share_a_look():
    """A frame made with scene 1's winner as reference is closer in colour to it."""
    scene_1 = generate("wide shot of a beach at golden hour, teal and orange")[0].image
    prompt = "close-up of a woman reading, indoor, night"
    alone = pixels(generate(prompt)[0]).mean(axis=(0, 1))
    chained = pixels(generate(prompt, references=[scene_1])[0]).mean(axis=(0, 1))
    target = np.asarray(scene_1, dtype=np.float64).mean(axis=(0, 1))
    assert np.linalg.norm(chained - target) < np.linalg.norm(alone - target)


@pytest.mark.parametrize(
    ("prompt", "key", "value"),
    [
        ("medium close-up shot of a barista", "shot_type", "medium close-up"),
        ("macro shot of a watch", "shot_type", "macro close-up"),
        ("a woman holding a mug", "subject", "person"),
        ("a mug held by a woman", "subject", "object"),
        ("low angle shot of a skyscraper", "camera_angle", "low angle"),
        ("overhead flat lay of breakfast", "camera_angle", "overhead"),
        ("overhead lighting on a desk", "camera_angle", "eye-level"),  # a light, not a camera
        ("a runner looking up at the sky, eye-level", "camera_angle", "eye-level"),  # a gaze, not a camera
        ("aerial view of a harbour", "camera_angle", "overhead"),  # the shot implies the camera
        ("wide angle lens, a woman in a cafe", "shot_type", "medium shot"),  # a lens, not a shot
        ("macro photo of coffee beans", "shot_type", "macro close-up"),  # the lens implies the shot
        ("dutch angle of a neon street", "tilted", True),
        ("key light from the right", "light_direction", "right"),
        ("backlit silhouette", "light_direction", "behind"),
        ("a vase", "light_direction", "left"),
        ("rule of thirds, subject on the right third", "placement", "right third"),
        ("rule of thirds", "placement", "left third"),
        ("symmetrical composition", "placement", "centre"),
        ("a cafe at dusk", "time_of_day", "dusk"),
        ("sunset over the bay", "time_of_day", "golden hour"),
    ],
)
def test_parse_frame(prompt, key, value):
    assert parse_frame(prompt).as_metadata()[key] == value


def test_palette_words_and_negative_prompt():
    spec = parse_frame("emerald green dress, gold earrings, red lips, sky-blue wall")
    assert spec.palette == ("emerald", "gold", "red", "sky blue")
    assert parse_frame("red and white mug", "no red").palette == ("white",)


def test_camera_angle_moves_the_horizon():
    low = generate("low angle shot of a tower")[0].metadata
    high = generate("high angle shot of a tower")[0].metadata
    overhead = generate("overhead shot of a table")[0].metadata
    assert low["horizon"] > 0.5 > high["horizon"] > overhead["horizon"] == 0.0


def test_rule_of_thirds_places_the_subject():
    meta = generate("medium shot of a woman, rule of thirds, subject on the right third", seeds=[4])[0].metadata
    x0, _, x1, _ = meta["subject_box"]
    assert abs((x0 + x1) / 2 / SIZE.width - 2 / 3) < 0.08
    meta = generate("medium shot of a woman, centered", seeds=[4])[0].metadata
    x0, _, x1, _ = meta["subject_box"]
    assert abs((x0 + x1) / 2 / SIZE.width - 1 / 2) < 0.08


def test_every_option_renders():
    prompts = [
        "dutch angle, dusk, establishing shot of a city, leading lines",
        "symmetry, studio, macro product shot, light from below",
        "indoor kitchen, backlit woman, 5600K",
        "outdoor field, golden hour, full body runner, light from above",
    ]
    for prompt in prompts:
        [image] = generate(prompt, size=ImageSize(width=128, height=64))
        assert image.image.size == (128, 64)
        assert np.asarray(image.image).std() > 5


def test_kelvin_to_rgb():
    assert kelvin_to_rgb(6600) == (255, 255, 255)
    assert kelvin_to_rgb(1000) == (255, 68, 0)
    warm, neutral, cool = kelvin_to_rgb(3200), kelvin_to_rgb(5500), kelvin_to_rgb(9000)
    assert warm[2] < neutral[2] < cool[2]
    assert cool[0] < 255


def test_dominant_colors_and_reference_weights():
    image = Image.new("RGB", (64, 64), (10, 200, 10))
    image.paste((240, 240, 240), (0, 0, 64, 16))  # a quarter white
    colours = dominant_colors(image, 2)
    assert [rgb for rgb, _ in colours] == [(10, 200, 10), (240, 240, 240)]
    assert [round(share, 2) for _, share in colours] == [0.75, 0.25]
    first, second = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    merged = reference_palette([first, second])
    assert merged == [((255, 0, 0), pytest.approx(2 / 3)), ((0, 0, 255), pytest.approx(1 / 3))]


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"prompt": " "}, "prompt"),
        ({"seeds": []}, "seeds"),
        ({"seeds": [-1]}, "seeds"),
        ({"references": ["not an image"]}, "references"),
    ],
)
def test_bad_inputs_are_named(kwargs, name):
    args = {
        "prompt": "a mug",
        "negative_prompt": "",
        "seeds": [1],
        "references": [],
        "size": SIZE,
        **kwargs,
    }
    prompt = args.pop("prompt")
    with pytest.raises(ValueError, match=name):
        GENERATOR.generate(prompt, **args)
