"""Mesh construction and declared sharding rules."""
import jax
import pytest
from jax.sharding import PartitionSpec as P

from sslax import parallel


def test_mesh_shape_fills_the_minus_one_axis():
  assert parallel.mesh_shape({"data": -1}, 8) == (8, 1, 1)
  assert parallel.mesh_shape({"data": 2, "fsdp": -1}, 8) == (2, 4, 1)
  assert parallel.mesh_shape({"data": 1, "fsdp": 2, "tensor": 4}, 8) == (1, 2, 4)


@pytest.mark.parametrize("sizes,message", [
    ({"data": 3}, "needs 3 devices, but 8 are present"),
    ({"data": 3, "fsdp": -1}, "does not divide 8 devices"),
    ({"data": -1, "fsdp": -1}, "at most one mesh axis may be -1"),
    ({"model": 8}, "unknown mesh axes"),
])
def test_bad_meshes_are_clear_errors(sizes, message):
  with pytest.raises(ValueError, match=message):
    parallel.mesh_shape(sizes, 8)


def test_rules_pick_the_first_matching_regex():
  mesh = parallel.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
  abstract = {"encoder": {"conv": {"kernel": jax.ShapeDtypeStruct((3, 3, 8, 16), "float32")},
                          "bn": {"scale": jax.ShapeDtypeStruct((16,), "float32")}},
              "head": {"dense": {"kernel": jax.ShapeDtypeStruct((16, 6), "float32")}}}
  rules = (("head/.*kernel", (None, "tensor")), ("kernel", "fsdp"))
  shardings = parallel.param_shardings(abstract, mesh, rules)
  assert shardings["head"]["dense"]["kernel"].spec == P(None, "tensor")
  assert shardings["encoder"]["conv"]["kernel"].spec == P(None, None, None, "fsdp")
  assert shardings["encoder"]["bn"]["scale"].spec == P()


def test_fsdp_rule_leaves_indivisible_arrays_whole():
  mesh = parallel.make_mesh({"fsdp": -1})
  shardings = parallel.param_shardings({"w": jax.ShapeDtypeStruct((3, 5), "float32")}, mesh,
                                       ((".*", "fsdp"),))
  assert shardings["w"].spec == P()
