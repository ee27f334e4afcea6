"""RecGOAT: shapes, gradients (none into the plan), each released-code switch, errors, end-to-end training."""
from dataclasses import replace
from itertools import combinations

import numpy as np
import pytest
import torch

from conftest import random_dataset

from recgoat_lib.alignment import alignment, pair_retrieval, uniformity, view_geometry
from recgoat_lib.data import DataError, Dataset
from recgoat_lib.evaluate import evaluate
from recgoat_lib.models import build_model, make_config
from recgoat_lib.models.base import info_nce
from recgoat_lib.models.recgoat import RecGOAT, RecGOATConfig
from recgoat_lib.ot import sinkhorn_log, sinkhorn_scaling
from recgoat_lib.train import TrainConfig, seed_everything, train

SMALL = RecGOATConfig(dim=16, knn_k=4)


@pytest.fixture(scope="module")
def ds():
    return random_dataset()


def batch(ds, n=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(ds.n_users, (n,), generator=g), torch.randint(ds.n_items, (n,), generator=g),
            torch.randint(ds.n_items, (n,), generator=g))


def model(ds, **overrides) -> RecGOAT:
    seed_everything(0)
    return build_model("recgoat", ds, replace(SMALL, **overrides))


def test_forward_shapes_and_diagnostics(ds):
    emb = model(ds)()
    assert emb.user.shape == (ds.n_users, 16) and emb.item.shape == (ds.n_items, 16)
    torch.testing.assert_close(emb.item.norm(dim=1), torch.ones(ds.n_items))
    ex = emb.extras
    for m in ("image", "text"):
        assert ex[f"item_{m}"].shape == ex[f"item_{m}_aligned"].shape == (ds.n_items, 16)
        assert ex[f"plan_{m}"].shape == (16, 16)
        assert abs(float(ex[f"plan_mass_{m}"]) - 1) < 1e-4
        assert float(ex[f"plan_row_error_{m}"]) < 1e-4  # rows are updated last, so they are exact
    assert float(ex["fusion_image"]) == pytest.approx(0.05) and float(ex["fusion_text"]) == pytest.approx(0.8)
    torch.testing.assert_close(emb.user, ex["user_cf"])  # user_fusion="align": the paper's score
    summed = model(ds, user_fusion="sum")()
    torch.testing.assert_close(summed.user, summed.extras["user_cf"] + summed.extras["user_lm"])


@pytest.mark.parametrize("gat_layers", [0, 1, 2])
def test_branch_on_a_target_neighbourhood_gives_the_full_graph_rows(ds, gat_layers):
    branch = model(ds, gat_layers=gat_layers).user_lm.eval()
    targets = torch.tensor([7, 3, 3, 0, 39])
    torch.testing.assert_close(branch(targets), branch()[targets])


@pytest.mark.parametrize("user_fusion", ["align", "sum"])
def test_batch_user_rows_equal_the_full_forward(ds, user_fusion):
    m = model(ds, user_fusion=user_fusion).eval()
    users = torch.tensor([5, 1, 30])
    full, part = m(), m(users)
    torch.testing.assert_close(part.user, full.user[users])
    torch.testing.assert_close(part.item, full.item)


def test_user_fusion_align_adds_the_user_pair_to_cmcl(ds):
    b = batch(ds)
    align = model(ds).eval().loss(*b)
    summed = model(ds, user_fusion="sum").eval().loss(*b)
    off = model(ds, user_branch=False).eval().loss(*b)
    torch.testing.assert_close(summed["cl_modality"], off["cl_modality"])  # same item pairs, no user pair
    users = torch.unique(b[0])
    emb = model(ds).eval()(users)
    user_pair = info_nce(emb.extras["user_cf"], emb.extras["user_lm"], SMALL.cl_temperature)
    torch.testing.assert_close(align["cl_modality"], (3 * off["cl_modality"] + user_pair) / 4)


@pytest.mark.parametrize("overrides", [{}, {"fusion": "sum"}, {"fusion": "concat"}, {"user_branch": False},
                                       {"user_fusion": "sum"},
                                       {"modalities": ("text",)}, {"cl_sign": "released"}, {"gat_layers": 0},
                                       {"gat_layers": 2}, {"modalities": (), "user_branch": False},
                                       {"infonce": "one_way", "cl_items": "batch", "init": "normal"}])
def test_every_trainable_parameter_gets_a_gradient(ds, overrides):
    m = model(ds, **overrides)
    parts = m.loss(*batch(ds))
    parts["loss"].backward()
    for name, p in m.named_parameters():
        assert p.grad is not None, f"{name} received no gradient"
        assert p.grad.abs().sum() > 0, f"{name} received a zero gradient"
    assert {"bpr", "reg", "cl", "cl_ui", "cl_modality"} <= set(parts)


def test_zero_cl_weight_skips_cmcl_with_the_same_loss_and_gradients(ds):
    """w/o CMCL computes no InfoNCE term, and trains exactly as the full loss weighted by 0 would."""
    def grads(m, loss):
        m.zero_grad()
        loss.backward()
        return {n: p.grad.clone() for n, p in m.named_parameters() if p.grad is not None}

    off, on = model(ds, cl_weight=0.0).eval(), model(ds, cl_weight=0.5).eval()  # same initial weights
    parts_off, parts_on = off.loss(*batch(ds)), on.loss(*batch(ds))
    assert "cl" not in parts_off and "cl" in parts_on
    torch.testing.assert_close(parts_off["loss"], parts_on["bpr"] + parts_on["reg"])
    g_off, g_on = grads(off, parts_off["loss"]), grads(on, parts_on["bpr"] + parts_on["reg"])
    assert g_off.keys() == g_on.keys()
    for name in g_off:
        torch.testing.assert_close(g_off[name], g_on[name])


def test_no_gradient_reaches_the_plan(ds):
    m = model(ds)
    emb = m()
    for mod in ("image", "text"):
        assert not emb.extras[f"plan_{mod}"].requires_grad
        assert not emb.extras[f"cost_{mod}"].requires_grad
    # the aligned view is linear in the plan: d(aligned)/d(delta) exists, the plan is a constant
    aligned = emb.extras["item_image"] @ (emb.extras["plan_image"] + m.delta["image"])
    torch.testing.assert_close(aligned, emb.extras["item_image_aligned"])


@pytest.mark.parametrize("method,solver", [("log", sinkhorn_log), ("released", sinkhorn_scaling)])
def test_sinkhorn_switch_selects_the_arithmetic(ds, method, solver):
    m = model(ds, sinkhorn=method).eval()
    ex = m().extras
    torch.testing.assert_close(ex["plan_text"], solver(ex["cost_text"], 0.01, 100))


def test_log_domain_plan_converges_and_released_fp32_plan_underflows_past_fp32s_range(ds):
    """Log domain: given enough iterations both marginals are uniform within 1e-4, and more iterations
    never hurt. Released fp32 arithmetic: once the smallest C/eps exceeds ~104, exp(-C/eps) underflows
    to 0 and the kernel and the plan are exactly zero; with C/eps well inside fp32's range the two
    solvers give the same plan (the departure is numerical, not a different method)."""
    default, converged = model(ds)().extras, model(ds, ot_iters=5000)().extras
    for m in ("image", "text"):
        assert abs(float(converged[f"plan_mass_{m}"]) - 1) < 1e-4
        assert float(converged[f"plan_row_error_{m}"]) < 1e-4 and float(converged[f"plan_col_error_{m}"]) < 1e-4
        assert float(converged[f"plan_col_error_{m}"]) <= float(default[f"plan_col_error_{m}"])
    underflow = -np.log(torch.finfo(torch.float32).smallest_normal * 2.0**-23)
    big = dict(ot_scale=1e3)
    released, log = model(ds, sinkhorn="released", **big)().extras, model(ds, **big)().extras
    for m in ("image", "text"):
        cost = released[f"cost_{m}"]
        assert float(cost.min()) / SMALL.ot_eps > underflow
        assert float(torch.exp(-cost / SMALL.ot_eps).max()) == 0.0 and float(released[f"plan_mass_{m}"]) == 0.0
        assert abs(float(log[f"plan_mass_{m}"]) - 1) < 1e-2  # the log domain has no such limit
        torch.testing.assert_close(released[f"cost_{m}"], log[f"cost_{m}"])  # same views, only the solver differs
    small = dict(ot_scale=1.0, ot_eps=0.1)
    released, log = model(ds, sinkhorn="released", **small)().extras, model(ds, **small)().extras
    for m in ("image", "text"):
        assert float(released[f"cost_{m}"].max()) / 0.1 < underflow / 4
        torch.testing.assert_close(released[f"plan_{m}"], log[f"plan_{m}"], rtol=1e-3, atol=1e-6)


def test_released_sinkhorn_collapses_oat_to_the_residual(ds):
    m = model(ds, sinkhorn="released", ot_scale=1e4).eval()  # C/eps far beyond fp32's range
    ex = m().extras
    assert float(ex["plan_mass_image"]) == 0.0
    torch.testing.assert_close(ex["item_image_aligned"], ex["item_image"] @ m.delta["image"])


def cmcl_parts(ds, **overrides) -> dict[str, torch.Tensor]:
    """The loss parts of one eval-mode step on `batch(ds)` of the model with `overrides`."""
    return model(ds, **overrides).eval().loss(*batch(ds))


def test_released_cl_sign_flips_only_the_item_modality_pairs(ds):
    """The released code has no user pair: its sign switch leaves that term as the paper's, and the
    user pair's own switch (`cl_user_sign`) flips that term alone."""
    b = batch(ds)
    items = cmcl_parts(ds, user_branch=False)["cl_modality"]  # the 3 item pairs' mean (same initial weights)
    emb = model(ds).eval()(torch.unique(b[0]))
    user = info_nce(emb.extras["user_cf"], emb.extras["user_lm"], SMALL.cl_temperature)
    paper, released = cmcl_parts(ds), cmcl_parts(ds, cl_sign="released")
    flipped_user = cmcl_parts(ds, cl_user_sign="flipped")
    both = cmcl_parts(ds, cl_sign="released", cl_user_sign="flipped")
    torch.testing.assert_close(paper["cl_modality"], (3 * items + user) / 4)
    torch.testing.assert_close(released["cl_modality"], (3 * (1 - items) + user) / 4)
    torch.testing.assert_close(flipped_user["cl_modality"], (3 * items + 1 - user) / 4)
    torch.testing.assert_close(both["cl_modality"], 1 - paper["cl_modality"])
    for parts in (released, flipped_user):
        torch.testing.assert_close(parts["cl_ui"], paper["cl_ui"])
        torch.testing.assert_close(parts["bpr"], paper["bpr"])


def two_product_info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, symmetric: bool) -> torch.Tensor:
    """InfoNCE as written before issue 16: a cross-entropy per direction, each on its own product."""
    a, b = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)
    target = torch.arange(len(a))
    ab = torch.nn.functional.cross_entropy(a @ b.T / temperature, target)
    return (ab + torch.nn.functional.cross_entropy(b @ a.T / temperature, target)) / 2 if symmetric else ab


@pytest.mark.parametrize("symmetric", [True, False])
@pytest.mark.parametrize("normalised", [True, False])
@pytest.mark.parametrize("temperature", [0.2, 0.05, 0.01])  # 0.01: below FUSED_MIN_TEMPERATURE (autograd path)
@pytest.mark.parametrize("width", [24, 100])  # row blocks of 64 and of 100 rows: 300 rows end in a partial block
def test_one_product_info_nce_equals_the_two_product_formula(symmetric, normalised, temperature, width):
    g = torch.Generator().manual_seed(3)
    a0, b0 = torch.randn(300, width, generator=g) * 3, torch.randn(300, width, generator=g)
    grads = []
    for fn in (two_product_info_nce, info_nce):
        a, b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
        if fn is info_nce and normalised:
            value = info_nce(torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1),
                             temperature, symmetric, normalised=True)
        else:
            value = fn(a, b, temperature, symmetric)
        value.backward()
        grads.append((value.detach(), a.grad, b.grad))
    for old, new in zip(*grads):
        torch.testing.assert_close(new, old)


def test_one_way_infonce_differs_from_symmetric_and_changes_nothing_else(ds):
    sym, one = cmcl_parts(ds), cmcl_parts(ds, infonce="one_way")
    emb = model(ds).eval()(torch.unique(batch(ds)[0]))
    u, p = emb.extras["user_cf"], emb.extras["user_lm"]
    assert not torch.isclose(one["cl_ui"], sym["cl_ui"]) and not torch.isclose(one["cl_modality"], sym["cl_modality"])
    assert not torch.isclose(info_nce(u, p, 0.2, symmetric=False), info_nce(p, u, 0.2, symmetric=False))
    for key in ("bpr", "reg"):
        torch.testing.assert_close(one[key], sym[key])


def test_cl_items_batch_runs_the_pairs_over_positives_and_negatives_with_duplicates(ds):
    users, pos, neg = batch(ds)
    pos = torch.cat([pos[:16], pos[:16]])  # duplicated positives: the unique set differs from the batch
    m = model(ds, cl_items="batch", user_branch=False).eval()
    ex = m().extras
    views = [ex["item_cf"], ex["item_image"], ex["item_text"]]
    expected = torch.stack([torch.stack([info_nce(a[rows], b[rows], SMALL.cl_temperature)
                                         for a, b in combinations(views, 2)]).mean() for rows in (pos, neg)]).mean()
    batch_rows = m.loss(users, pos, neg)
    unique_rows = model(ds, user_branch=False).eval().loss(users, pos, neg)
    torch.testing.assert_close(batch_rows["cl_modality"], expected)
    assert not torch.isclose(batch_rows["cl_modality"], unique_rows["cl_modality"])
    torch.testing.assert_close(batch_rows["cl_ui"], unique_rows["cl_ui"])


def test_normal_init_has_std_0_1_and_xavier_stays_the_default(ds):
    normal, xavier = model(ds, init="normal").embedding.weight.detach(), model(ds).embedding.weight.detach()
    assert float(normal.std()) == pytest.approx(0.1, rel=0.05) and abs(float(normal.mean())) < 0.01
    bound = (6 / sum(xavier.shape)) ** 0.5  # Xavier-uniform on [n_users + n_items, dim]
    assert float(xavier.abs().max()) <= bound and float(xavier.std()) == pytest.approx(bound / 3 ** 0.5, rel=0.1)


def test_gat_layer_has_the_papers_activation_and_dropouts_by_default(ds):
    bare = dict(gat_feat_dropout=0.0, gat_activation="none", gat_out_dropout=0.0)
    default, plain = model(ds).branches["text"], model(ds, **bare).branches["text"]  # same initial weights
    torch.testing.assert_close(default.eval()(), torch.nn.functional.leaky_relu(plain.eval()(), 0.2))
    # in training mode each dropout acts alone: attention dropout off, then feature or output dropout on
    for extra in ({"gat_feat_dropout": 0.5}, {"gat_out_dropout": 0.5}):
        branch = model(ds, **{**bare, "dropout": 0.0, **extra}).branches["text"]
        assert not torch.allclose(branch.train()(), branch.eval()())
    branch = model(ds, **{**bare, "dropout": 0.0}).branches["text"]
    torch.testing.assert_close(branch.train()(), branch.eval()())


def test_fusion_modes_differ_and_text_only_works(ds):
    b = batch(ds)
    losses = {f: float(model(ds, fusion=f).eval().loss(*b)["bpr"].detach()) for f in ("oat", "sum", "concat")}
    assert len(set(losses.values())) == 3
    emb = model(ds, modalities=("text",))()
    assert "item_image" not in emb.extras and "plan_text" in emb.extras


def test_views_are_the_eval_mode_forward(ds):
    m = model(ds)
    views = m.views()
    assert list(views) == ["id", "image", "image_aligned", "text", "text_aligned", "fused"] and m.training
    m.eval()
    emb = m()
    torch.testing.assert_close(views["fused"], emb.item)
    torch.testing.assert_close(views["text_aligned"], emb.extras["item_text_aligned"])
    assert not torch.equal(views["text_aligned"], views["text"])
    plain = model(ds, fusion="sum").views()  # no OAT: the aligned view is the unaligned one
    assert list(plain) == list(views) and plain["text_aligned"] is plain["text"]


def test_attention_is_a_softmax_over_incoming_edges(ds):
    m = model(ds)
    for branch in ("image", "text", "user"):
        edge_index, alpha = m.attention(branch)
        n = ds.n_users if branch == "user" else ds.n_items
        per_target = torch.zeros(n).index_add_(0, edge_index[1], alpha)
        torch.testing.assert_close(per_target, torch.ones(n))
    assert m.training  # attention() restores the training mode
    with pytest.raises(ValueError, match="no user branch"):
        model(ds, user_branch=False).attention("user")
    with pytest.raises(ValueError, match="unknown branch"):
        m.attention("audio")


def test_missing_features_and_bad_config_raise_clear_errors(ds):
    no_user = Dataset(name="nouser", n_users=ds.n_users, n_items=ds.n_items, interactions=ds.interactions,
                      item_features=ds.item_features)
    with pytest.raises(DataError, match="user_features\\['text'\\]"):
        build_model("recgoat", no_user, SMALL)
    assert isinstance(build_model("recgoat", no_user, replace(SMALL, user_branch=False)), RecGOAT)
    text_only = no_user.with_features()
    text_only.item_features.pop("image")
    with pytest.raises(DataError, match="image"):
        build_model("recgoat", text_only, replace(SMALL, user_branch=False))
    for bad in ({"fusion": "mean"}, {"cl_sign": "minus"}, {"sinkhorn": "fast"}, {"modalities": ("text", "text")},
                {"modalities": ("audio",)}, {"gat_layers": -1}, {"dim": 20}, {"cl_modality_share": 1.5},
                {"user_fusion": "concat"}, {"cl_user_sign": "released"}, {"infonce": "two_way"},
                {"cl_items": "all"}, {"init": "kaiming"}, {"gat_activation": "elu"}, {"gat_out_dropout": 1.0}):
        with pytest.raises(ValueError):
            make_config("recgoat", **bad)
    assert make_config("recgoat", modalities=["text"]).modalities == ("text",)


def test_trains_end_to_end(ds):
    m = model(ds)
    seen: dict[int, dict[str, float]] = {}
    res = train(m, ds, TrainConfig(epochs=3, batch_size=64, eval_every=1, patience=5, progress=False), seed=0,
                on_eval=lambda epoch, net: seen.update({epoch: evaluate(net, ds, "test").metrics}))
    assert res.epochs_run == 3 and sorted(seen) == [1, 2, 3]
    assert res.test == seen[res.best_epoch]  # the reported test metrics are those of the selected epoch
    assert all(np.isfinite(row["loss"]) and abs(row["plan_mass_image"] - 1) < 1e-3 for row in res.history)


def test_alignment_and_uniformity():
    x = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    assert alignment(x, 3 * x) == pytest.approx(0.0, abs=1e-6)
    assert alignment(x, -x) == pytest.approx(4.0)
    assert uniformity(x[:1].repeat(50, 1)) == pytest.approx(0.0, abs=1e-6)
    xn = torch.nn.functional.normalize(x, dim=1)
    d2 = torch.cdist(xn, xn).pow(2)
    off = ~torch.eye(200, dtype=torch.bool)
    assert uniformity(x) == pytest.approx(float(torch.log(torch.exp(-2 * d2[off]).mean())), abs=1e-4)
    assert uniformity(x) < -1.0
    assert uniformity(x, max_rows=50) != uniformity(x)
    with pytest.raises(ValueError, match="equal shape"):
        alignment(x, x[:10])
    table = view_geometry({"a": x, "b": 2 * x, "c": -x})
    assert table["measure"].tolist() == ["uniformity"] * 3 + ["alignment"] * 3 + ["pair retrieval"] * 3
    assert table.query("measure == 'alignment'").set_index("views").loc["a-c", "value"] == pytest.approx(4.0)
    assert pair_retrieval(x, 2 * x) == 1.0 and pair_retrieval(x, -x) == 0.0
    assert pair_retrieval(x, x[torch.randperm(200, generator=torch.Generator().manual_seed(1))]) < 0.05


def test_info_nce_refuses_a_second_backward_through_one_graph():
    """The fused backward writes its gradient over the saved exponentials, so it may run once only."""
    a, b = torch.randn(8, 4, requires_grad=True), torch.randn(8, 4, requires_grad=True)
    loss = info_nce(a, b, 0.2)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        loss.backward()


def test_ranking_forward_skips_only_what_scores_do_not_read(ds):
    """Eval-mode ranking embeddings equal the full forward's; the user LM branch is left out only with
    user_fusion="align" (with "sum" it is part of the user vector) and only when no dropout draws."""
    for fusion in ("align", "sum"):
        net = model(ds, user_fusion=fusion).eval()
        full, ranking = net(), net.ranking_forward()
        torch.testing.assert_close(ranking.user, full.user)
        torch.testing.assert_close(ranking.item, full.item)
        assert ("user_lm" in ranking.extras) == (fusion == "sum")
    assert "user_lm" in model(ds).train().ranking_forward().extras


def straightforward_info_nce(a, b, temperature, symmetric=True, normalised=False):
    """The reference for the step test: `two_product_info_nce` on the rows as given."""
    return two_product_info_nce(a, b, temperature, symmetric)


@pytest.mark.parametrize("overrides", [{}, {"infonce": "one_way", "cl_items": "batch", "gat_layers": 2}])
def test_training_step_equals_the_straightforward_computation(ds, overrides, monkeypatch, one_thread):
    """Issue 16's optimisations change no value: the loss and every gradient of a training-mode step (dropout on,
    same seed) equal those of the plain formulation: PyG's attention and aggregation in each GAT layer, the
    two-product InfoNCE, the projection of the gathered feature rows, fresh logits buffers."""
    from recgoat_lib.models import gat, recgoat
    from recgoat_lib.models.base import LOGITS_BUFFERS

    def run():
        m = model(ds, **overrides).train()
        torch.manual_seed(11)
        parts = m.loss(*batch(ds, n=64))
        parts["loss"].backward()
        return parts, {n: p.grad for n, p in m.named_parameters()}

    fast = run()
    pyg_forward = gat.SparseGATConv.forward
    monkeypatch.setattr(gat.SparseGATConv, "forward",
                        lambda self, x, edge_index: pyg_forward(self, x, edge_index, return_attention_weights=True)[0])
    monkeypatch.setattr(recgoat, "info_nce", straightforward_info_nce)
    monkeypatch.setattr(recgoat, "project_rows", lambda proj, x, rows: proj(x if rows is None else x[rows]))
    monkeypatch.setattr(LOGITS_BUFFERS, "keep", 0)
    plain = run()
    for key in ("loss", "bpr", "cl", "cl_ui", "cl_modality"):
        torch.testing.assert_close(fast[0][key], plain[0][key], rtol=1e-6, atol=0)
    for name, grad in plain[1].items():
        torch.testing.assert_close(fast[1][name], grad, rtol=1e-4, atol=1e-7, msg=lambda m: f"{name}: {m}")


def test_user_rows_projected_before_or_after_the_gather_are_equal():
    from recgoat_lib.models.recgoat import project_rows
    g = torch.Generator().manual_seed(0)
    proj, x = torch.nn.Linear(24, 8), torch.randn(50, 24, generator=g)
    for rows in (torch.arange(40), torch.tensor([3, 7])):  # most rows (projected first), a few (gathered first)
        torch.testing.assert_close(project_rows(proj, x, rows), proj(x[rows]))


def test_bf16_training_step_runs_and_stays_close_to_fp32(ds):
    """TrainConfig(precision="bf16"): the step runs under bf16 autocast with finite loss and gradients, within
    2% of the fp32 loss from the same weights and seed (bf16 keeps ~3 significant digits in the products);
    parameters stay fp32. The trainer accepts the switch; an unknown precision is refused."""
    from recgoat_lib.train import training_precision

    losses = {}
    for precision in ("fp32", "bf16"):
        m = model(ds).train()
        torch.manual_seed(3)
        with training_precision(precision, torch.device("cpu")):
            parts = m.loss(*batch(ds, n=64))
        parts["loss"].backward()
        losses[precision] = float(parts["loss"].detach())
        assert all(p.dtype == torch.float32 and torch.isfinite(p.grad).all() for p in m.parameters())
    assert np.isfinite(losses["bf16"]) and abs(losses["bf16"] / losses["fp32"] - 1) < 0.02
    assert losses["bf16"] != losses["fp32"]  # autocast did change the products
    res = train(model(ds), ds, TrainConfig(epochs=2, batch_size=64, progress=False, precision="bf16"), seed=0)
    assert res.epochs_run == 2 and all(np.isfinite(row["loss"]) for row in res.history)
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
