"""OAT's dimension cost and Sinkhorn: identity vs naive cost, marginals, POT agreement, released collapse."""
import numpy as np
import ot
import pytest
import torch

from recgoat_lib.ot import (cost_peak_memory_mb, dimension_cost, extrapolate_peak_mb, naive_dimension_cost,
                            plan_diagnostics, sinkhorn_log, sinkhorn_scaling, transport_plan)


def views(n=300, d=16, std=0.1, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (std * torch.randn(n, d, generator=g, dtype=dtype), std * torch.randn(n, d, generator=g, dtype=dtype))


def test_identity_cost_equals_naive_cost():
    zm, zcf = views(n=50, d=12, dtype=torch.float64)
    zm = zm + 0.3  # non-centred columns exercise every term of the expansion
    fast, naive = dimension_cost(zm, zcf, 100.0), naive_dimension_cost(zm, zcf, 100.0)
    assert fast.shape == (12, 12)
    torch.testing.assert_close(fast, naive, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(fast, fast.T)  # the cost is between two different views


def test_cost_rejects_mismatched_views():
    with pytest.raises(ValueError, match="equal shape"):
        dimension_cost(torch.zeros(5, 3), torch.zeros(4, 3))


def test_log_sinkhorn_has_uniform_marginals_at_paper_settings():
    zm, zcf = views(n=1000, d=64)
    plan = transport_plan(dimension_cost(zm, zcf, 100.0), eps=0.01, n_iter=100)
    diag = plan_diagnostics(plan)
    assert abs(float(diag["mass"]) - 1.0) < 1e-4
    assert float(diag["row_error"]) < 1e-4 and float(diag["col_error"]) < 1e-4
    assert (plan >= 0).all() and torch.isfinite(plan).all()


@pytest.mark.filterwarnings("ignore:Sinkhorn did not converge")
@pytest.mark.parametrize("n_iter", [3, 100])
def test_log_sinkhorn_agrees_with_pot(n_iter):
    cost = dimension_cost(*views(n=400, d=20, dtype=torch.float64), 100.0)
    uniform = np.full(20, 1 / 20)
    ref = ot.bregman.sinkhorn_log(uniform, uniform, cost.numpy(), 0.01, numItermax=n_iter, stopThr=0.0)
    np.testing.assert_allclose(sinkhorn_log(cost, 0.01, n_iter).numpy(), ref, atol=1e-12, rtol=1e-9)


def test_batched_plans_equal_single_plans():
    costs = torch.stack([dimension_cost(*views(seed=s), 100.0) for s in range(3)])
    batched = transport_plan(costs)
    for j in range(3):
        torch.testing.assert_close(batched[j], transport_plan(costs[j]))


def test_released_arithmetic_collapses_at_typical_scale():
    cost = dimension_cost(*views(n=1000, d=64, std=0.1), 100.0)
    assert float(cost.min()) / 0.01 > 110  # exp(-C/eps) is below fp32's smallest number everywhere
    released = transport_plan(cost, method="released")
    assert float(released.sum()) == 0.0
    assert abs(float(transport_plan(cost).sum()) - 1.0) < 1e-4


def test_released_arithmetic_matches_log_domain_when_it_does_not_underflow():
    cost = dimension_cost(*views(n=200, d=10, std=0.1, dtype=torch.float64), 1.0)  # C / eps ~ 2
    torch.testing.assert_close(sinkhorn_scaling(cost, 0.01, 200), sinkhorn_log(cost, 0.01, 200),
                               atol=1e-8, rtol=1e-5)


def test_plan_carries_no_gradient_and_bad_method_fails():
    zm, zcf = views()
    zm.requires_grad_(True)
    plan = transport_plan(dimension_cost(zm, zcf))
    assert not plan.requires_grad
    with pytest.raises(ValueError, match="Sinkhorn method"):
        transport_plan(dimension_cost(zm, zcf), method="fast")


def test_naive_cost_needs_the_item_by_dim_by_dim_tensor():
    n, d = 2000, 64
    tensor_mb = n * d * d * 4 / 2**20  # 31 MB
    naive, identity, identity_wide = cost_peak_memory_mb([("naive", n, d), ("identity", n, d), ("identity", n, 2048)])
    assert naive >= 0.9 * tensor_mb
    assert identity < naive / 4
    assert identity_wide >= 0.9 * n * 2048 * 4 / 2**20  # the identity's I x d temporaries are seen, not hidden
    with pytest.raises(ValueError, match="cost method"):
        cost_peak_memory_mb([("fancy", n, d)])


def test_extrapolation_recovers_a_known_constant():
    n, d = np.array([100, 200, 400]), np.array([10, 20, 10])
    peak = 8.0 * n * d**2 / 2**20
    c, mb = extrapolate_peak_mb(n, d, peak, 7050, 800)
    assert c == pytest.approx(8.0) and mb == pytest.approx(8.0 * 7050 * 800**2 / 2**20)
