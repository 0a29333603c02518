"""Judge-free text metrics: hand-made texts must come out in the expected order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import interp_steer as ist
from interp_steer.generation import Generation
from interp_steer.metrics import (
    ProbeReadout,
    completion_perplexity,
    distinct_n,
    repetition_rate,
    score_generations,
    style_features,
    token_nll,
    vader_valence,
)

VARIED = "The ferry left at dawn. Gulls circled the harbour while the captain checked the ropes."
LOOPING = "the ferry left the ferry left the ferry left the ferry left the ferry left"


def test_repetition_and_distinct_order():
    assert repetition_rate(LOOPING) > 0.5 > repetition_rate(VARIED) == 0.0
    assert distinct_n(VARIED, 2) == 1.0 > distinct_n(LOOPING, 2)
    assert distinct_n("", 2) == 0.0 and repetition_rate("one two") == 0.0
    # Hand count: "a b a b a" has bigrams ab, ba, ab, ba -> 2 distinct of 4.
    assert distinct_n("a b a b a", 2) == 0.5
    assert repetition_rate("a b a b a", 2) == 0.5


def test_vader_orders_cheerful_above_grim():
    cheerful, grim, flat = vader_valence([
        "What a wonderful, joyful day; everyone laughed and hugged.",
        "It was a horrible, miserable night of betrayal and dread.",
        "The table is in the kitchen.",
    ])
    assert cheerful > flat > grim
    assert -1.0 <= grim and cheerful <= 1.0


def test_style_features():
    shouty = style_features("Run! Now! Go, go, go!")
    calm = style_features("She walked slowly along the quiet river and thought about the long winter ahead.")
    assert shouty["exclamations_per_sentence"] == 1.0 and calm["exclamations_per_sentence"] == 0.0
    assert calm["mean_sentence_length"] > shouty["mean_sentence_length"]
    assert shouty["punctuation_per_word"] > calm["punctuation_per_word"]
    assert style_features("go go go go")["type_token_ratio"] == 0.25
    assert style_features("")["n_words"] == 0.0


def test_reading_ease_orders_simple_above_dense():
    from interp_steer.metrics import reading_ease, syllables

    assert syllables("cat") == 1 and syllables("harbour") == 2
    simple = reading_ease("The cat sat. The dog ran. We had fun.")
    dense = reading_ease("Institutional considerations notwithstanding, comprehensive reorganisation "
                         "necessitates unprecedented administrative coordination.")
    assert simple > 80 > 20 > dense


def fake_generation(model, prompt, completion):
    return Generation(prompt, completion, tuple(model.encode([completion])[0]),
                      tuple(model.encode([prompt])[0]), True)


def test_token_nll_scores_only_the_completion(tiny):
    prompt, completion = "The harbour at dawn", " is quiet and grey"
    p_ids, c_ids = tiny.encode([prompt])[0], tiny.encode([completion])[0]
    (nll,) = token_nll(tiny, [p_ids + c_ids], [len(p_ids)])
    assert nll.shape == (len(c_ids),)
    with torch.inference_mode():
        logits = tiny.hf_model(torch.tensor([p_ids + c_ids])).logits[0].float()
    expected = -torch.log_softmax(logits, -1)[len(p_ids) - 1 : -1].gather(-1, torch.tensor(c_ids)[:, None])[:, 0]
    torch.testing.assert_close(nll, expected, rtol=1e-5, atol=1e-5)
    # Padding a batch with a longer sequence does not change a row's scores.
    (again, _) = token_nll(tiny, [p_ids + c_ids, p_ids + c_ids + c_ids], [len(p_ids), 2])
    torch.testing.assert_close(again, nll, rtol=1e-4, atol=1e-4)


def test_perplexity_prefers_the_models_own_continuation(tiny):
    prompt = "Describe the market."
    (own,) = ist.generate(tiny, [prompt], max_new_tokens=12)
    gen = torch.Generator().manual_seed(0)
    random_ids = tuple(torch.randint(0, len(tiny.tokenizer), (len(own.token_ids),), generator=gen).tolist())
    other = Generation(prompt, "", random_ids, own.prompt_ids, False)
    ppl = completion_perplexity(tiny, [own, other])
    assert ppl[0] < ppl[1]  # greedy text is the model's most likely continuation
    empty = Generation(prompt, "", (), own.prompt_ids, True)
    assert math.isnan(completion_perplexity(tiny, [empty])[0])


def test_shared_prompt_perplexity_equals_a_full_forward(tiny):
    # Completions of one prompt share its cache; the result must equal scoring prompt + completion
    # in one forward, for ragged completions in one batch and prompts of different lengths.
    prompts = ["Describe the market.", "A long corridor with many doors, each painted a different colour."]
    outs = ist.generate(tiny, [p for p in prompts for _ in range(3)], max_new_tokens=9, temperature=1.0, seed=3)
    gens = [Generation(g.prompt, g.text, g.token_ids[: 3 + k], g.prompt_ids, False) for k, g in enumerate(outs)]
    shared = completion_perplexity(tiny, gens, batch_size=2)
    nll = token_nll(tiny, [list(g.prompt_ids) + list(g.token_ids) for g in gens], [len(g.prompt_ids) for g in gens])
    np.testing.assert_allclose(shared, [math.exp(float(v.mean())) for v in nll], rtol=1e-4)


def test_probe_readout_separates_its_training_corpora(tiny):
    a, base = ist.load_builtin("persona_a")[:30], ist.load_builtin("baseline")[:30]
    readout = ProbeReadout.fit(tiny, a, base, layer=2, labels=("persona_a", "baseline"))
    scores = readout.score(tiny, a[:5] + base[:5] + [""])
    assert scores[:5].mean() > scores[5:10].mean()
    assert np.isnan(scores[-1])
    assert readout.train_accuracy > 0.9
    # the decision function is the unbounded scale dominance is read on; P is its logistic
    log_odds = readout.log_odds(tiny, a[:5] + base[:5] + [""])
    np.testing.assert_allclose(1 / (1 + np.exp(-log_odds[:-1])), scores[:-1], rtol=1e-12)
    np.testing.assert_allclose(log_odds[:-1], np.log(scores[:-1] / (1 - scores[:-1])), rtol=1e-6, atol=1e-6)
    assert np.isnan(log_odds[-1])


def test_score_generations_has_every_metric(tiny):
    gens = ist.generate(tiny, ["Say something.", "Describe rain."], max_new_tokens=8)
    scores = score_generations(tiny, gens)
    for key in ("perplexity", "repetition", "distinct_1", "distinct_2", "vader", "mean_sentence_length",
                "type_token_ratio", "punctuation_per_word", "exclamations_per_sentence", "reading_ease", "n_words"):
        assert scores[key].shape == (2,), key
    with pytest.raises(KeyError):
        scores["probe_valence"]
