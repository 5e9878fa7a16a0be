"""Fixed-width SIMD vectors for numba loops: a ``Vec`` type held in a register and a few
intrinsics (load, store, fused multiply-add, horizontal sum).

Why not leave it to LLVM's auto-vectoriser: in a loop over a row's edges it either keeps the
per-row accumulator in memory (it cannot prove the output row does not alias the input) or,
with reassociation allowed, vectorises across edges with gathers -- both 5-10x slower than
one vector FMA per edge. Explicit vectors of ``WIDTH`` lanes make the code shape fixed.
Rows are padded to a multiple of ``WIDTH`` by the caller; loads and stores are unaligned.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

WIDTH = 8  # lanes: 32 bytes of float32 (one AVX2 register), 64 bytes of float64


class Vec(types.Type):
    """``WIDTH`` lanes of a float dtype, as an LLVM vector value."""

    def __init__(self, dtype: types.Float) -> None:
        self.dtype = dtype
        super().__init__(name=f"Vec({dtype}x{WIDTH})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type: Vec) -> None:
        lane = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(lane, WIDTH))


def _vec_ptr(context, builder, arr_type, arr, index):
    """Pointer to WIDTH lanes of ``arr`` starting at flat element ``index`` (no bounds or
    negative-index handling: the callers' offsets are in range by construction)."""
    ary = context.make_array(arr_type)(context, builder, arr)
    ptr = builder.gep(ary.data, [index])
    lane = context.get_value_type(arr_type.dtype)
    return builder.bitcast(ptr, ir.PointerType(ir.VectorType(lane, WIDTH)))


@intrinsic
def vload(typingctx, arr, index):
    """arr[index:index+WIDTH] as a Vec."""
    if not isinstance(arr, types.Array) or not isinstance(index, types.Integer):
        return None
    vec = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        ptr = _vec_ptr(context, builder, sig.args[0], args[0], args[1])
        return builder.load(ptr, align=arr.dtype.bitwidth // 8)

    return vec(arr, index), codegen


@intrinsic
def vstore(typingctx, arr, index, value):
    """arr[index:index+WIDTH] = value."""
    if not isinstance(arr, types.Array) or not isinstance(value, Vec):
        return None

    def codegen(context, builder, sig, args):
        ptr = _vec_ptr(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], ptr, align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()

    return types.none(arr, index, value), codegen


@intrinsic
def load(typingctx, arr, index):
    """arr[index] for a non-negative index (numba's own indexing also handles negative
    ones: five more instructions per access in a loop over edges)."""
    if not isinstance(arr, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        return builder.load(builder.gep(ary.data, [args[1]]))

    return arr.dtype(arr, index), codegen


@intrinsic
def store(typingctx, arr, index, value):
    """arr[index] = value for a non-negative index."""
    if not isinstance(arr, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        ary = context.make_array(sig.args[0])(context, builder, args[0])
        val = context.cast(builder, args[2], sig.args[2], sig.args[0].dtype)
        builder.store(val, builder.gep(ary.data, [args[1]]))
        return context.get_dummy_value()

    return types.none(arr, index, value), codegen


@intrinsic
def vzero(typingctx, like):
    """A zero Vec of ``like``'s dtype (an array or a scalar)."""
    dtype = like.dtype if isinstance(like, types.Array) else like
    if not isinstance(dtype, types.Float):
        return None
    vec = Vec(dtype)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vec), None)

    return vec(like), codegen


def _splat(context, builder, scalar, from_type, vec: Vec):
    lane = context.cast(builder, scalar, from_type, vec.dtype)
    empty = ir.Constant(context.get_value_type(vec), ir.Undefined)
    first = builder.insert_element(empty, lane, ir.Constant(ir.IntType(32), 0))
    mask = ir.Constant(ir.VectorType(ir.IntType(32), WIDTH), [0] * WIDTH)
    return builder.shuffle_vector(first, empty, mask)


@intrinsic
def vscale(typingctx, scalar, x):
    """scalar * x."""
    if not isinstance(x, Vec) or not isinstance(scalar, (types.Float, types.Integer)):
        return None

    def codegen(context, builder, sig, args):
        s = _splat(context, builder, args[0], sig.args[0], sig.args[1])
        return builder.fmul(s, args[1])

    return x(scalar, x), codegen


@intrinsic
def vaxpy(typingctx, scalar, x, acc):
    """acc + scalar * x (contracted to one FMA)."""
    if not (isinstance(x, Vec) and isinstance(acc, Vec)) or x.dtype != acc.dtype:
        return None

    def codegen(context, builder, sig, args):
        s = _splat(context, builder, args[0], sig.args[0], sig.args[1])
        prod = builder.fmul(s, args[1], flags=("contract",))
        return builder.fadd(args[2], prod, flags=("contract",))

    return acc(scalar, x, acc), codegen


@intrinsic
def vfma(typingctx, x, y, acc):
    """acc + x * y, lane by lane (one FMA)."""
    if not all(isinstance(t, Vec) for t in (x, y, acc)):
        return None

    def codegen(context, builder, sig, args):
        prod = builder.fmul(args[0], args[1], flags=("contract",))
        return builder.fadd(args[2], prod, flags=("contract",))

    return acc(x, y, acc), codegen


@intrinsic
def vmul(typingctx, x, y):
    """x * y, lane by lane."""
    if not (isinstance(x, Vec) and isinstance(y, Vec)):
        return None

    def codegen(context, builder, sig, args):
        return builder.fmul(args[0], args[1])

    return x(x, y), codegen


@intrinsic
def vadd(typingctx, x, y):
    """x + y."""
    if not (isinstance(x, Vec) and isinstance(y, Vec)):
        return None

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])

    return x(x, y), codegen


@intrinsic
def vsum(typingctx, x):
    """Sum of the lanes (pairwise tree, log2(WIDTH) shuffles)."""
    if not isinstance(x, Vec):
        return None

    def codegen(context, builder, sig, args):
        v = args[0]
        undef = ir.Constant(v.type, ir.Undefined)
        half = WIDTH // 2
        while half >= 1:
            mask = [i + half if i < half else i for i in range(WIDTH)]
            shuffled = builder.shuffle_vector(
                v, undef, ir.Constant(ir.VectorType(ir.IntType(32), WIDTH), mask)
            )
            v = builder.fadd(v, shuffled)
            half //= 2
        return builder.extract_element(v, ir.Constant(ir.IntType(32), 0))

    return x.dtype(x), codegen


# exp(x) = 2^m * e^r with m = round(x / ln 2), |r| <= ln(2)/2, e^r by its Taylor series:
# degree 6 for float32 (truncation 1.2e-7 relative, about one ulp), 12 for float64 (6e-15)
# (Cody-Waite: ln 2 = hi + lo with m * hi exact, Cephes' split for float32, fdlibm's for 64)
_EXP = {
    32: dict(degree=6, low=-87.0, high=88.0, mantissa=23, bias=127,
             ln2_hi=0.693359375, ln2_lo=-2.12194440e-4),
    64: dict(degree=12, low=-707.0, high=709.0, mantissa=52, bias=1023,
             ln2_hi=6.93147180369123816490e-01, ln2_lo=1.90821492927058770002e-10),
}


def _const_vec(ty: ir.VectorType, value: float) -> ir.Constant:
    return ir.Constant(ty, [value] * WIDTH)


@intrinsic
def vexp(typingctx, x):
    """e^x lane by lane, accurate to about one ulp of float32 (4 ulp of float64); lanes
    below about -87 (float32) or -707 (float64) give 0 instead of a subnormal."""
    if not isinstance(x, Vec):
        return None
    spec = _EXP[x.dtype.bitwidth]

    def codegen(context, builder, sig, args):
        v = args[0]
        fty = v.type
        bits = x.dtype.bitwidth
        ity = ir.VectorType(ir.IntType(bits), WIDTH)
        suffix = f"v{WIDTH}f{bits}"
        floor = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(fty, [fty]), f"llvm.floor.{suffix}"
        )
        low = _const_vec(fty, spec["low"])
        clamped = builder.select(builder.fcmp_ordered("<", v, low), low, v)
        high = _const_vec(fty, spec["high"])
        clamped = builder.select(builder.fcmp_ordered(">", clamped, high), high, clamped)
        m = builder.call(
            floor,
            [builder.fadd(builder.fmul(clamped, _const_vec(fty, 1.4426950408889634)),
                          _const_vec(fty, 0.5))],
        )
        r = builder.fsub(clamped, builder.fmul(m, _const_vec(fty, spec["ln2_hi"])))
        r = builder.fsub(r, builder.fmul(m, _const_vec(fty, spec["ln2_lo"])))
        # Horner: 1 + r (1 + r/2 (1 + r/3 (...)))
        poly = _const_vec(fty, 1.0)
        for k in range(spec["degree"], 0, -1):
            poly = builder.fadd(
                _const_vec(fty, 1.0),
                builder.fmul(builder.fmul(poly, r, flags=("contract",)),
                             _const_vec(fty, 1.0 / k), flags=("contract",)),
            )
        exponent = builder.add(builder.fptosi(m, ity), ir.Constant(ity, [spec["bias"]] * WIDTH))
        scale = builder.bitcast(
            builder.shl(exponent, ir.Constant(ity, [spec["mantissa"]] * WIDTH)), fty
        )
        out = builder.fmul(poly, scale)
        return builder.select(builder.fcmp_ordered("<", v, low), _const_vec(fty, 0.0), out)

    return x(x), codegen


__all__ = [
    "WIDTH",
    "Vec",
    "load",
    "store",
    "vadd",
    "vaxpy",
    "vexp",
    "vfma",
    "vload",
    "vmul",
    "vscale",
    "vstore",
    "vsum",
    "vzero",
]
