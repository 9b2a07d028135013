package org.tfedge.unpacker;

/**
 * DENSIFY-sparse tensors packed as payloads of their dense tensors (docs/FORMAT.md section
 * 1.1; tfedge/tflite/_densify.py is the Python side, with the same checks and words): the
 * static checks of a densify decoder, and the sparse tensor's values and index rebuilt from
 * the decoded dense tensor.
 */
final class Densify {
    static final int OPTIONS_SIZE = 4;
    static final int FORMAT_VERSION = 4;
    static final int DENSE = 0;
    static final int SPARSE_CSR = 1;
    static final int BUILTIN_DENSIFY = 124;
    /** See MAX_SPARSE_RANK in tfedge/tflite/_densify.py. */
    static final int MAX_SPARSE_RANK = 16;

    /** One densify decoder: its sparse tensor S and what expand writes back. */
    static final class Target {
        int subgraph;
        int op;
        int sparse; // S's tensor index
        int dense; // D's tensor index
        int sparseBuffer;
        String sparseName;
        int[] shape;
        int[] formats;
        int[] segmentTypes; // SparseIndexVector union type per dimension (0 for dense)
        int[] indexTypes;
        int[][] segments; // set by restore(), per dimension (null for dense)
        int[][] indices;
    }

    private Densify() {}

    /** The element size of a SparseIndexVector union member, 0 for an unknown one. */
    static int vectorElementSize(int kind) {
        return kind == 1 ? 4 : kind == 2 ? 2 : kind == 3 ? 1 : 0;
    }

    static long vectorMax(int kind) {
        return kind == 1 ? Integer.MAX_VALUE : kind == 2 ? 0xffff : 0xff;
    }

    static String vectorDtype(int kind) {
        return kind == 1 ? "int32" : kind == 2 ? "uint16" : "uint8";
    }

    /**
     * Why the sparsity table at {@code sp} (0: none) is not of the kind a packed file may
     * hold (traversal order the identity, no block map, DENSE or SPARSE_CSR dimensions with
     * empty index vectors), or null; fills {@code t}'s formats and vector types.
     */
    static String check(FlatReader r, int sp, Target t) throws TfedgeFormatException {
        if (sp == 0) {
            return "has no sparsity table";
        }
        int rank = t.shape.length;
        if (rank > MAX_SPARSE_RANK) {
            return "has rank " + rank + ", over the " + MAX_SPARSE_RANK
                    + " dimensions tfedge rebuilds";
        }
        int order = r.fieldRef(sp, 0);
        int nOrder = order == 0 ? 0 : r.vectorLength(order, 4);
        boolean identity = nOrder == rank;
        StringBuilder orderText = new StringBuilder("[");
        for (int i = 0; i < nOrder; i++) {
            int v = r.vectorI32(order, i);
            identity &= v == i;
            orderText.append(i == 0 ? "" : ", ").append(v);
        }
        orderText.append("]");
        if (!identity) {
            return "traversal order " + orderText + " is not the identity of rank " + rank;
        }
        int blockMap = r.fieldRef(sp, 1);
        if (blockMap != 0 && r.vectorLength(blockMap, 4) > 0) {
            return "has a block map";
        }
        int dims = r.fieldRef(sp, 2);
        int nDims = dims == 0 ? 0 : r.vectorLength(dims, 4);
        if (nDims != rank) {
            return "has " + nDims + " dimension metadata entries for rank " + rank;
        }
        t.formats = new int[rank];
        t.segmentTypes = new int[rank];
        t.indexTypes = new int[rank];
        for (int i = 0; i < rank; i++) {
            int d = r.vectorTable(dims, i);
            int format = r.fieldU8(d, 0, 0);
            int segType = r.fieldU8(d, 2, 0);
            int idxType = r.fieldU8(d, 4, 0);
            t.formats[i] = format;
            t.segmentTypes[i] = segType;
            t.indexTypes[i] = idxType;
            if (format == DENSE) {
                int denseSize = r.fieldI32(d, 1, 0);
                if (denseSize != t.shape[i]) {
                    return "dimension " + i + " is dense of size " + denseSize + ", shape has "
                            + t.shape[i];
                }
                if (segType != 0 || idxType != 0) {
                    return "dimension " + i + " is dense but has index vectors";
                }
            } else if (format == SPARSE_CSR) {
                String[] what = {"array_segments", "array_indices"};
                int[] kinds = {segType, idxType};
                int[] fields = {3, 5};
                for (int k = 0; k < 2; k++) {
                    int es = vectorElementSize(kinds[k]);
                    if (es == 0) {
                        return "dimension " + i + "'s " + what[k] + " has vector type "
                                + kinds[k];
                    }
                    int vec = r.fieldRef(d, fields[k]);
                    int values = vec == 0 ? 0 : r.fieldRef(vec, 0);
                    int size = values == 0 ? 0 : r.vectorLength(values, es);
                    if (size != 0) {
                        return "dimension " + i + "'s " + what[k] + " holds " + size
                                + " entries, expected none";
                    }
                }
            } else {
                return "dimension " + i + " has format " + format;
            }
        }
        return null;
    }

    /**
     * Rebuilds S's index from the decoded dense tensor D (element size {@code es}) into
     * {@code t} and returns S's stored values: docs/FORMAT.md section 1.1, "Expanding".
     */
    static byte[] restore(Target t, byte[] dense, int es) throws TfedgeFormatException {
        int total = dense.length / es;
        boolean[] nonzero = new boolean[total];
        for (int i = 0; i < total; i++) {
            for (int k = 0; k < es; k++) {
                if (dense[i * es + k] != 0) {
                    nonzero[i] = true;
                    break;
                }
            }
        }
        int rank = t.shape.length;
        t.segments = new int[rank][];
        t.indices = new int[rank][];
        int[] entries = {0};
        long size = 1;
        for (int i = 0; i < rank; i++) {
            int n = t.shape[i];
            size *= n;
            int[] cand = new int[entries.length * n];
            for (int e = 0; e < entries.length; e++) {
                for (int c = 0; c < n; c++) {
                    cand[e * n + c] = entries[e] * n + c;
                }
            }
            if (t.formats[i] == DENSE) {
                entries = cand;
                continue;
            }
            int span = size == 0 ? 0 : (int) (total / size);
            int[] segments = new int[entries.length + 1];
            int[] kept = new int[cand.length];
            int k = 0;
            for (int e = 0; e < entries.length; e++) {
                for (int c = 0; c < n; c++) {
                    int cnd = cand[e * n + c];
                    boolean below = false;
                    for (int j = cnd * span; j < (cnd + 1) * span && !below; j++) {
                        below = nonzero[j];
                    }
                    if (below) {
                        kept[k++] = cnd;
                    }
                }
                segments[e + 1] = k;
            }
            int[] indices = new int[k];
            for (int j = 0; j < k; j++) {
                indices[j] = n == 0 ? kept[j] : kept[j] % n;
            }
            String[] what = {"array_segments", "array_indices"};
            int[][] arrays = {segments, indices};
            int[] kinds = {t.segmentTypes[i], t.indexTypes[i]};
            for (int a = 0; a < 2; a++) {
                long max = 0;
                for (int v : arrays[a]) {
                    max = Math.max(max, v);
                }
                if (max > vectorMax(kinds[a])) {
                    throw new TfedgeFormatException("the decoded tensor's non-zero elements "
                            + "give dimension " + i + "'s " + what[a] + " an entry " + max
                            + ", beyond its " + vectorDtype(kinds[a]) + " vector",
                            t.sparseName, -1);
                }
            }
            t.segments[i] = segments;
            t.indices[i] = indices;
            entries = java.util.Arrays.copyOf(kept, k);
        }
        byte[] values = new byte[entries.length * es];
        for (int j = 0; j < entries.length; j++) {
            System.arraycopy(dense, entries[j] * es, values, j * es, es);
        }
        return values;
    }
}
