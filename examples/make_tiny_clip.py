"""Train the tiny CLIP the image tests and the image bench use, and write it as a model folder.

No CLIP checkpoint can be downloaded here, so this builds a transformers ``CLIPModel`` from a config
(fixed seed), a word-level tokenizer over the caption words (``tokenizers``, no hub) and a
``CLIPImageProcessor``, and trains it contrastively on synthetic Pillow images of coloured shapes
captioned "red circle", "blue square", ... It takes about 5 CPU-minutes (500 steps) and writes
about 0.6 MB; the folder is committed under ``tests/data/tiny-clip`` so CI never trains.

    python examples/make_tiny_clip.py tests/data/tiny-clip

The same seed gives the same images and the same initial weights; the trained weights can differ in
the last bits between torch builds, which is why the folder is committed rather than rebuilt.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 60, 220),
    "yellow": (235, 210, 20),
}
SHAPES = ("circle", "square", "triangle")
IMAGE_SIZE = 32
SEED = 19
SPECIALS = ["<pad>", "<unk>", "<|startoftext|>", "<|endoftext|>"]
FILLERS = ["a", "photo", "of", "the", "product", "shape", "image"]


def captions() -> list[str]:
    """Every class caption, in label order."""
    return [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]


def draw_shape(colour: str, shape: str, rng: random.Random, *, size: int = IMAGE_SIZE) -> Image.Image:
    """One RGB image: a ``colour`` ``shape`` of random size and place on a light, noisy background."""
    grey = rng.randint(200, 255)
    image = Image.new("RGB", (size, size), (grey, grey, grey))
    draw = ImageDraw.Draw(image)
    extent = rng.randint(size // 3, size - 6)
    x0, y0 = rng.randint(0, size - extent), rng.randint(0, size - extent)
    box = (x0, y0, x0 + extent, y0 + extent)
    fill = tuple(max(0, min(255, c + rng.randint(-25, 25))) for c in COLOURS[colour])
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon([(x0 + extent / 2, y0), (x0, y0 + extent), (x0 + extent, y0 + extent)], fill=fill)
    return image


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the caption words, framed like CLIP's (start and end tokens)."""
    words = sorted({w for c in captions() for w in c.split()} | set(FILLERS))
    vocab = {token: i for i, token in enumerate(SPECIALS + words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", vocab["<|startoftext|>"]), ("<|endoftext|>", vocab["<|endoftext|>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=16,
        do_lower_case=True,
    )


def build_model(tokenizer: PreTrainedTokenizerFast) -> CLIPModel:
    torch.manual_seed(SEED)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        },
        vision_config={
            "image_size": IMAGE_SIZE,
            "patch_size": 8,
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
        },
        projection_dim=32,
    )
    return CLIPModel(config)


def _dataset(count: int, rng: random.Random) -> tuple[list[Image.Image], list[int]]:
    images, labels = [], []
    for _ in range(count):
        label = rng.randrange(len(COLOURS) * len(SHAPES))
        colour, shape = captions()[label].split()
        images.append(draw_shape(colour, shape, rng))
        labels.append(label)
    return images, labels


def train(out: Path, *, steps: int = 500, batch: int = 96) -> dict[str, float]:
    """Train and save to ``out``; returns held-out accuracies (image -> caption, caption -> top-10 images)."""
    rng = random.Random(SEED)
    torch.manual_seed(SEED)
    tokenizer = build_tokenizer()
    processor = CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    model = build_model(tokenizer)
    images, labels = _dataset(3000, rng)
    pixels = processor(images=images, return_tensors="pt")["pixel_values"]
    label_t = torch.tensor(labels)
    # Captions with and without filler words, so "a photo of a red circle" means what "red circle" does.
    texts = captions() + [f"a photo of a {c}" for c in captions()]
    tokens = tokenizer(texts, padding=True, return_tensors="pt")
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)
    n_classes = len(captions())
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(images), (batch,))
        img = F.normalize(model.get_image_features(pixel_values=pixels[idx]).pooler_output, dim=-1)
        txt = F.normalize(model.get_text_features(**tokens).pooler_output, dim=-1)
        txt = txt.view(2, n_classes, -1)
        scale = model.logit_scale.exp().clamp(max=100)
        y = label_t[idx]
        loss = 0.0
        for variant in txt:
            logits = scale * img @ variant.T  # [batch, classes]
            loss = loss + F.cross_entropy(logits, y)
            # Caption -> images: every image of the caption's class is a positive.
            positives = (y.unsqueeze(0) == torch.arange(n_classes).unsqueeze(1)).float()
            present = positives.sum(dim=1) > 0
            log_p = F.log_softmax(logits.T, dim=1)
            loss = loss - ((log_p * positives).sum(1) / positives.sum(1).clamp(min=1))[present].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step} loss {float(loss.detach()):.3f}", flush=True)
    model.eval()
    metrics = _evaluate(model, tokenizer, processor, random.Random(SEED + 1))
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    processor.save_pretrained(out)
    (out / "TRAINING.json").write_text(
        json.dumps({"seed": SEED, "steps": steps, "batch": batch, "captions": captions(), **metrics}, indent=2) + "\n"
    )
    return metrics


def _evaluate(
    model: CLIPModel, tokenizer: PreTrainedTokenizerFast, processor: CLIPImageProcessor, rng: random.Random
) -> dict[str, float]:
    images, labels = _dataset(600, rng)
    with torch.inference_mode():
        pixels = processor(images=images, return_tensors="pt")["pixel_values"]
        img = F.normalize(model.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
        tokens = tokenizer(captions(), padding=True, return_tensors="pt")
        txt = F.normalize(model.get_text_features(**tokens).pooler_output, dim=-1)
    sims = (img @ txt.T).numpy()
    y = np.array(labels)
    image_to_caption = float((sims.argmax(1) == y).mean())
    top10 = np.argsort(-sims.T, axis=1)[:, :10]
    caption_to_images = float(np.mean([(y[top10[c]] == c).mean() for c in range(len(captions()))]))
    return {"heldout_image_to_caption_acc": image_to_caption, "heldout_caption_to_images_p10": caption_to_images}


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data/tiny-clip")
    print(json.dumps(train(target), indent=2))
