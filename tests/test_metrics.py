"""Judge-free text metrics: hand-made texts must come out in the expected order."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import interp_steer as ist
from interp_steer.generation import Generation
from interp_steer.likelihood import completion_perplexity, sequence_perplexity, token_nll
from interp_steer.metrics import (
    distinct_n,
    repetition_rate,
    score_generations,
    style_features,
    vader_valence,
    words,
)
from interp_steer.probes import ProbeReadout

VARIED = "The ferry left at dawn. Gulls circled the harbour while the captain checked the ropes."
LOOPING = "the ferry left the ferry left the ferry left the ferry left the ferry left"


def test_repetition_and_distinct_order():
    assert repetition_rate(LOOPING) > 0.5 > repetition_rate(VARIED) == 0.0
    assert distinct_n(VARIED, 2) == 1.0 > distinct_n(LOOPING, 2)
    # No n-gram at all: the fraction does not exist (0 would read as "maximally repetitive").
    assert math.isnan(distinct_n("", 2)) and math.isnan(repetition_rate("one two"))
    # Hand count: "a b a b a" has bigrams ab, ba, ab, ba -> 2 distinct of 4.
    assert distinct_n("a b a b a", 2) == 0.5
    assert repetition_rate("a b a b a", 2) == 0.5


def test_repetition_and_distinct_3_cannot_disagree():
    # One implementation: every n-gram is either a first occurrence (counted by distinct-n) or a
    # repeat, so repetition = 1 - distinct-n on any text, short texts (NaN for both) included.
    rng = np.random.default_rng(0)
    vocab = ["the", "ferry", "left", "sea", "sea", "gulls", "Rain", "rain!", "ropes,", "dawn."]
    texts = ["", "one", "one two", LOOPING, VARIED, "a b a b a"]
    texts += [" ".join(rng.choice(vocab, size=int(rng.integers(0, 40)))) for _ in range(300)]
    for text in texts:
        for n in (1, 2, 3, 4):
            rep, distinct = repetition_rate(text, n), distinct_n(text, n)
            if math.isnan(distinct):
                assert math.isnan(rep) and len(words(text)) < n
            else:
                assert rep == 1.0 - distinct and 0.0 <= rep <= 1.0
    # Hand count of repeats, independently: "x y x y x y" has 3-grams xyx, yxy, xyx, yxy -> 2 repeats of 4.
    assert repetition_rate("x y x y x y") == 0.5


def test_probe_readout_reports_its_own_heldout_accuracy():
    # Oracle: with more dimensions than texts any labelling is separable, so the training accuracy
    # of a probe on pure noise is 1.0; its own cross-validated accuracy must say chance.
    rng = np.random.default_rng(0)
    noise = rng.normal(size=(60, 200))
    chance = ProbeReadout.from_activations(noise[:30], noise[30:], layer=0, folds=5, seed=0)
    assert chance.train_accuracy == 1.0 and abs(chance.heldout_accuracy - 0.5) < 0.2 and chance.folds == 5
    planted = noise.copy()
    planted[:30, :40] += 1.0  # a planted direction
    clear = ProbeReadout.from_activations(planted[:30], planted[30:], layer=0, folds=5, seed=0)
    assert clear.heldout_accuracy > 0.9
    # It is scored on held-out folds of exactly these features: an independent k-fold loop agrees.
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    y = np.r_[np.ones(30), np.zeros(30)]
    correct = 0
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(noise, y):
        scaler = StandardScaler().fit(noise[train])
        probe = LogisticRegression(max_iter=2000).fit(scaler.transform(noise[train]), y[train])
        correct += int((probe.predict(scaler.transform(noise[test])) == y[test]).sum())
    assert chance.heldout_accuracy == pytest.approx(correct / 60)  # equal folds: mean of fold accuracies
    assert math.isnan(ProbeReadout.from_activations(noise[:30], noise[30:], layer=0).heldout_accuracy)
    with pytest.raises(ValueError, match="folds"):
        ProbeReadout.from_activations(noise[:3], noise[3:6], layer=0, folds=5)


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
        logits = tiny.hf_model(torch.tensor([p_ids + c_ids], device=tiny.device)).logits[0].float().cpu()
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


def test_sequence_perplexity_is_a_completion_of_its_first_token(tiny, texts):
    # Scoring a text on its own = scoring everything after its first token as a completion of that
    # token (the KV-cache path of completion_perplexity, an independent computation).
    ids = tiny.encode(texts)
    alone = sequence_perplexity(tiny, ids, batch_size=3)
    as_completions = completion_perplexity(tiny, [Generation("", "", tuple(t[1:]), tuple(t[:1]), False) for t in ids])
    np.testing.assert_allclose(alone, as_completions, rtol=1e-4)
    assert np.isnan(sequence_perplexity(tiny, [ids[0][:1]])[0])


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
