"""LightGCNPropagation's hand-written layer mean (Horner's rule, one autograd node) against PyG's LGConv."""
import pytest
import torch
from torch_geometric.nn import LGConv

from recgoat_lib.data import load_dataset
from recgoat_lib.graphs import to_torch_sparse, user_item_adjacency
from recgoat_lib.models.lightgcn import LightGCNPropagation


@pytest.mark.parametrize("layers", [0, 1, 2, 3])
def test_propagation_and_gradient_match_lgconv(layers):
    torch.manual_seed(0)
    adj = to_torch_sparse(user_item_adjacency(load_dataset("toy")))
    x = torch.randn(adj.shape[0], 8, requires_grad=True)
    weight = torch.randn(adj.shape[0], 8)
    ours = LightGCNPropagation(adj, layers=layers)(x)
    (ours * weight).sum().backward()
    ours_grad, x.grad = x.grad.clone(), None

    h, ref = x, x
    for conv in [LGConv(normalize=False) for _ in range(layers)]:
        h = conv(h, adj)
        ref = ref + h
    ref = ref / (layers + 1)
    (ref * weight).sum().backward()
    torch.testing.assert_close(ours, ref, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(ours_grad, x.grad, atol=1e-6, rtol=1e-5)


def test_directed_graph_is_refused():
    directed = torch.tensor([[0.0, 1.0], [0.0, 0.0]]).to_sparse_csr()
    with pytest.raises(ValueError, match="symmetric"):
        LightGCNPropagation(directed, layers=2)


def test_loss_and_gradient_equal_three_separate_gathers():
    """LightGCN's loss gathers the batch's rows at once (`base.batch_rows`): the value and the gradient are
    those of the straightforward three gathers from the propagated and the ego embeddings."""
    from recgoat_lib.models import build_model
    from recgoat_lib.models.base import bpr_loss, l2_reg

    ds = load_dataset("toy")
    torch.manual_seed(0)
    net = build_model("lightgcn", ds, {"dim": 8, "reg": 0.1})
    users, pos, neg = (torch.randint(0, n, (64,)) for n in (ds.n_users, ds.n_items, ds.n_items))
    users[1] = users[0]  # repeated rows accumulate their gradients
    loss = net.loss(users, pos, neg)["loss"]
    grad, = torch.autograd.grad(loss, net.embedding.weight)

    emb, ego = net(), net.embedding.weight
    ref = bpr_loss(emb.user[users], emb.item[pos], emb.item[neg]) + 0.1 * l2_reg(
        ego[users], ego[net.n_users + pos], ego[net.n_users + neg])
    ref_grad, = torch.autograd.grad(ref, ego)
    torch.testing.assert_close(loss, ref)
    torch.testing.assert_close(grad, ref_grad)
