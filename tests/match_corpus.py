"""A small synthetic corpus of papers in a few themes, for the matcher's tests."""

from __future__ import annotations

import random

from bot.models import Entry, Interests, Subscriber

THEMES: dict[str, tuple[list[str], list[str]]] = {
    "quant": (["Post-Training Quantization", "Low-Bit Weights", "Mixed-Precision Quantization", "4-bit LLM Inference"],
              ["We quantize the weights and activations of large language models to 4-bit integers",
               "outliers in activations make low-bit quantization hard and we rescale channels",
               "a calibration set of few samples is enough for post-training quantization",
               "mixed-precision bit-width allocation keeps accuracy of quantized vision transformers"]),
    "speech": (["Streaming Speech Recognition", "Text-to-Speech Synthesis", "Spoken Dialogue", "Voice Conversion"],
               ["an automatic speech recognition model with a conformer encoder and CTC loss",
                "our text-to-speech system synthesizes natural voice with a neural vocoder",
                "spoken dialogue with low latency for voice assistants",
                "speech translation from audio in many languages"]),
    "diffusion": (["Latent Diffusion", "Fast Image Generation", "Consistency Distillation", "Diffusion Transformers"],
                  ["a denoising diffusion model generates images from text prompts",
                   "consistency distillation reduces the sampling steps of diffusion models",
                   "diffusion transformers scale image synthesis with better FID",
                   "classifier-free guidance improves text-to-image generation"]),
    "rl": (["Offline Reinforcement Learning", "Policy Optimization", "Exploration in RL", "Model-Based RL"],
           ["an agent learns a policy from reward in Atari environments",
            "offline reinforcement learning from logged trajectories with a value function",
            "policy gradient with a learned critic improves sample efficiency",
            "exploration bonuses for sparse reward Markov decision processes"]),
    "graph": (["Graph Neural Networks", "Message Passing", "Link Prediction", "Graph Transformers"],
              ["a graph neural network with message passing over node features",
               "link prediction on knowledge graphs with heterogeneous edges",
               "node classification benchmarks for graph transformers",
               "oversmoothing in deep message passing networks on molecules"]),
}


def paper(theme: str, n: int, rng: random.Random, authors: tuple[str, ...] = ()) -> Entry:
    """One synthetic paper of `theme`."""
    titles, sentences = THEMES[theme]
    title = f"{rng.choice(titles)} {rng.choice(['Revisited', 'at Scale', 'Made Simple', 'for Everyone'])}"
    summary = ". ".join(rng.sample(sentences, 3)) + ". We evaluate on standard benchmarks and release code."
    return Entry(id=f"test:{theme}-{n}", title=title, summary=summary, authors=authors)


def corpus(per_theme: int = 8, seed: int = 1) -> list[Entry]:
    """`per_theme` papers of every theme, interleaved."""
    rng = random.Random(seed)
    return [paper(t, i, rng) for i in range(per_theme) for t in THEMES]


def subscriber(sid: str, max_items: int = 10, **interests: object) -> Subscriber:
    """A subscriber with the given interests (tuples)."""
    return Subscriber(id=sid, email=f"{sid}@example.org", max_items=max_items,
                      interests=Interests(**{k: tuple(v) if isinstance(v, list) else v for k, v in interests.items()}))  # type: ignore[arg-type]
