package org.tfedge.unpacker;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Expands a tfedge-packed {@code .tflite} into the plain flatbuffer it came from, undoing
 * docs/FORMAT.md section 1: every payload is decoded into its weight tensor's buffer, and the
 * {@code TFEDGE_DECODE} operators, payload tensors, payload buffers and {@code tfedge} metadata
 * entry are removed (and the operator code, when no operator uses it any more).
 *
 * <p>The model is re-serialised table by table from the TFLite schema ({@link Schema}); the
 * inline bytes of each table are copied as they are and only its offsets (and the buffer and
 * operator-code indices that change) are rewritten. The output is sized exactly by a first,
 * counting pass and then written into one direct {@link ByteBuffer} in native byte order, the
 * form {@code org.tensorflow.lite.Interpreter} takes.
 *
 * <p>Usage: {@code ByteBuffer model = Unpacker.expand(bytes); new Interpreter(model);}
 */
public final class Unpacker {
    /**
     * The newest {@code tfedge} metadata format version this reader accepts: a file's version
     * is the highest of its payloads' (docs/FORMAT.md section 1), so it is the payloads'.
     */
    public static final int FORMAT_VERSION = Densify.FORMAT_VERSION;
    static final String DECODE_OP = "TFEDGE_DECODE";
    static final String METADATA_NAME = "tfedge";
    static final int CUSTOM = 32;
    /** See tfedge/tflite/_packed_checks.py: MAX_UNSHARED_GROWTH and UNSHARED_SLACK. */
    static final long MAX_UNSHARED_GROWTH = 8;
    static final long UNSHARED_SLACK = 1 << 16;
    /** The largest output: one direct ByteBuffer, less a margin for alignment. */
    static final long MAX_OUTPUT = Integer.MAX_VALUE - 64L;

    private final FlatReader r;
    private final int model;
    /** False for a model tfedge did not pack: it is returned as it is. */
    private final boolean packed;
    private int[] opcodeMap; // old operator-code index -> new, -1 = removed
    private int[] bufferMap; // old buffer index -> new, -1 = removed
    private final List<int[]> tensorMaps = new ArrayList<int[]>(); // per subgraph
    private final List<boolean[]> removedOps = new ArrayList<boolean[]>();
    private boolean[] removedMetadata;
    private final List<Decode> decodes = new ArrayList<Decode>();
    /** Weight buffer index -> the first payload that decodes into it. */
    private final Map<Integer, Decode> decodedBuffers = new HashMap<Integer, Decode>();
    /** Weight buffer index -> position of its data in the output (set by the first pass). */
    private final Map<Integer, Integer> dataPos = new HashMap<Integer, Integer>();
    private int subgraph = -1;
    private int signatureSubgraph = -1;
    private long decodeNanos;
    private boolean trusted;
    /** Densify decoders by (subgraph << 32 | operator) and by (subgraph << 32 | tensor S). */
    private final Map<Long, Densify.Target> densifyOps = new HashMap<Long, Densify.Target>();
    private final Map<Long, Densify.Target> densifyTensors =
            new HashMap<Long, Densify.Target>();
    private int densifyCode = -1;
    /** While a densify decoder's sparse tensor is copied: it, and the dimension. */
    private Densify.Target restoring;
    private int restoringDim = -1;
    /** Decoded buffer index -> the bytes its data takes (set by write()). */
    private final Map<Integer, Integer> decodedSizes = new HashMap<Integer, Integer>();

    /** One TFEDGE_DECODE operator: its payload and the weight tensor it produces. */
    private static final class Decode {
        String name;
        int tensorType;
        int weightBuffer;
        int[] shape;
        int[] data; // {start, length} of the payload in the file
        Payload payload; // set once its header has been checked
        Densify.Target densify; // a densify decoder's sparse tensor, else null
    }

    private static long key(int subgraph, int index) {
        return ((long) subgraph << 32) | (index & 0xffffffffL);
    }

    private Unpacker(byte[] file, int size) throws TfedgeFormatException {
        r = new FlatReader(file, size);
        if (size < 8) {
            throw new TfedgeFormatException("not a .tflite file: " + size + " bytes is shorter "
                    + "than a flatbuffer header", null, 0);
        }
        if (file[4] != 'T' || file[5] != 'F' || file[6] != 'L' || file[7] != '3') {
            throw new TfedgeFormatException("not a .tflite file: file identifier is "
                    + Payload.pyBytes(file, 4, 4) + ", expected b'TFL3' (is this a TensorFlow "
                    + "SavedModel, a .keras or a truncated file?)", null, 4);
        }
        long root = r.u32(0);
        if (root + 4 > size) {
            throw new TfedgeFormatException("truncated .tflite file: root table at byte " + root
                    + " is past the end (" + size + " bytes)", null, 0);
        }
        model = (int) root;
        r.vtable(model);

        int buffers = r.fieldRef(model, 4);
        int nBuffers = buffers == 0 ? 0 : r.vectorLength(buffers, 4);
        int codes = r.fieldRef(model, 1);
        int nCodes = codes == 0 ? 0 : r.vectorLength(codes, 4);
        int subgraphs = r.fieldRef(model, 2);
        int nSubgraphs = subgraphs == 0 ? 0 : r.vectorLength(subgraphs, 4);
        int metadata = r.fieldRef(model, 6);
        int nMetadata = metadata == 0 ? 0 : r.vectorLength(metadata, 4);
        checkStructure(subgraphs, nSubgraphs, nBuffers, nCodes, metadata, nMetadata);

        // The tfedge metadata entry (the first one gives the version).
        String version = null;
        removedMetadata = new boolean[nMetadata];
        for (int i = 0; i < nMetadata; i++) {
            int m = r.vectorTable(metadata, i);
            if (!METADATA_NAME.equals(r.fieldString(m, 0))) {
                continue;
            }
            removedMetadata[i] = true;
            if (version == null) {
                int[] meta = bufferData(buffers, (int) r.fieldU32(m, 1, 0));
                version = MetadataJson.formatVersion(r.b, meta[0], meta[1]);
            }
        }

        // The TFEDGE_DECODE operator code: the first custom code of that name.
        int decodeCode = -1;
        for (int i = 0; i < nCodes && decodeCode < 0; i++) {
            int c = r.vectorTable(codes, i);
            int builtin = Math.max(r.fieldI32(c, 3, 0), (byte) r.fieldU8(c, 0, 0));
            if (builtin == CUSTOM && DECODE_OP.equals(r.fieldString(c, 1))) {
                decodeCode = i;
            }
        }
        List<int[]> ops = new ArrayList<int[]>(); // {subgraph, operator, payload, weight}
        for (int s = 0; s < nSubgraphs && decodeCode >= 0; s++) {
            int sg = r.vectorTable(subgraphs, s);
            int opv = r.fieldRef(sg, 3);
            int nOps = opv == 0 ? 0 : r.vectorLength(opv, 4);
            for (int o = 0; o < nOps; o++) {
                int op = r.vectorTable(opv, o);
                if (r.fieldU32(op, 0, 0) != decodeCode) {
                    continue;
                }
                int[] in = intVector(r.fieldRef(op, 1));
                int[] out = intVector(r.fieldRef(op, 2));
                boolean negative = false;
                for (int v : in) {
                    negative |= v < 0;
                }
                for (int v : out) {
                    negative |= v < 0;
                }
                if (in.length != 1 || out.length != 1 || negative) {
                    throw new TfedgeFormatException("subgraph " + s + " operator " + o + ": "
                            + DECODE_OP + " must have one input and one output, has "
                            + in.length + " and " + out.length);
                }
                int co = r.fieldRef(op, 5);
                ops.add(new int[] {s, o, in[0], out[0], co == 0 ? 0 : r.vectorLength(co, 1),
                        co});
            }
        }
        packed = version != null || !ops.isEmpty();
        if (!packed) {
            return;
        }
        if (version != null && (version.length() > 9
                || Integer.parseInt(version) > FORMAT_VERSION)) {
            throw new TfedgeFormatException("packed format version " + version + " is newer "
                    + "than this tfedge reads (" + FORMAT_VERSION + "): upgrade tfedge");
        }

        checkDecodeBuffers(subgraphs, nBuffers, ops);
        checkDensify(subgraphs, nBuffers, codes, nCodes, ops,
                version == null ? -1 : Integer.parseInt(version));

        // What to remove and renumber. The payloads are checked and decoded by write().
        boolean[] dropBuffer = new boolean[nBuffers];
        List<boolean[]> dropTensors = new ArrayList<boolean[]>();
        for (int s = 0; s < nSubgraphs; s++) {
            int sg = r.vectorTable(subgraphs, s);
            int tv = r.fieldRef(sg, 0);
            int opv = r.fieldRef(sg, 3);
            dropTensors.add(new boolean[tv == 0 ? 0 : r.vectorLength(tv, 4)]);
            removedOps.add(new boolean[opv == 0 ? 0 : r.vectorLength(opv, 4)]);
        }
        for (int[] d : ops) {
            int sg = r.vectorTable(subgraphs, d[0]);
            int tensors = r.fieldRef(sg, 0);
            int nTensors = tensors == 0 ? 0 : r.vectorLength(tensors, 4);
            if (d[2] >= nTensors || d[3] >= nTensors) {
                throw new TfedgeFormatException("subgraph " + d[0] + " operator " + d[1]
                        + " refers to tensor " + Math.max(d[2], d[3]) + ", but the subgraph has "
                        + nTensors + " tensors");
            }
            int pt = r.vectorTable(tensors, d[2]);
            int wt = r.vectorTable(tensors, d[3]);
            Decode dec = new Decode();
            dec.name = r.fieldString(wt, 3);
            if (dec.name == null) {
                dec.name = "";
            }
            dec.tensorType = r.fieldU8(wt, 1, 0);
            dec.weightBuffer = (int) r.fieldU32(wt, 2, 0);
            dec.shape = intVector(r.fieldRef(wt, 0));
            dec.data = bufferData(buffers, (int) r.fieldU32(pt, 2, 0));
            dec.densify = densifyOps.get(key(d[0], d[1]));
            if (dec.densify != null) {
                // The decoded D goes back into S's values and index; D's buffer stays empty.
                dec.weightBuffer = dec.densify.sparseBuffer;
            }
            decodes.add(dec);
            removedOps.get(d[0])[d[1]] = dec.densify == null;
            dropTensors.get(d[0])[d[2]] = true;
            dropBuffer[(int) r.fieldU32(pt, 2, 0)] = true;
            if (!decodedBuffers.containsKey(dec.weightBuffer)) {
                decodedBuffers.put(dec.weightBuffer, dec);
            }
        }
        for (int i = 0; i < nMetadata; i++) {
            if (removedMetadata[i]) {
                dropBuffer[(int) r.fieldU32(r.vectorTable(metadata, i), 1, 0)] = true;
            }
        }
        // A buffer still referenced by what is kept stays.
        for (int s = 0; s < nSubgraphs; s++) {
            int tv = r.fieldRef(r.vectorTable(subgraphs, s), 0);
            boolean[] dropT = dropTensors.get(s);
            for (int t = 0; t < dropT.length; t++) {
                if (!dropT[t]) {
                    dropBuffer[(int) r.fieldU32(r.vectorTable(tv, t), 2, 0)] = false;
                }
            }
        }
        for (int i = 0; i < nMetadata; i++) {
            if (!removedMetadata[i]) {
                dropBuffer[(int) r.fieldU32(r.vectorTable(metadata, i), 1, 0)] = false;
            }
        }
        for (int b : intVector(r.fieldRef(model, 5))) {
            if (b >= 0 && b < nBuffers) {
                dropBuffer[b] = false;
            }
        }
        if (nBuffers > 0) {
            dropBuffer[0] = false;
        }
        for (int b : decodedBuffers.keySet()) {
            dropBuffer[b] = false;
        }
        bufferMap = indexMap(dropBuffer);
        for (boolean[] dropT : dropTensors) {
            tensorMaps.add(indexMap(dropT));
        }
        boolean[] dropCode = new boolean[nCodes];
        if (decodeCode >= 0) {
            dropCode[decodeCode] = true;
            for (int s = 0; s < nSubgraphs; s++) {
                int opv = r.fieldRef(r.vectorTable(subgraphs, s), 3);
                boolean[] dropO = removedOps.get(s);
                for (int o = 0; o < dropO.length; o++) {
                    if (!dropO[o] && !densifyOps.containsKey(key(s, o))
                            && r.fieldU32(r.vectorTable(opv, o), 0, 0) == decodeCode) {
                        dropCode[decodeCode] = false;
                    }
                }
            }
        }
        opcodeMap = indexMap(dropCode);
    }

    /**
     * Each TFEDGE_DECODE operator's payload and weight tensors refer to real buffers other
     * than buffer 0 (TFLite's empty buffer).
     */
    private void checkDecodeBuffers(int subgraphs, int nBuffers, List<int[]> ops)
            throws TfedgeFormatException {
        for (int[] d : ops) {
            int tensors = r.fieldRef(r.vectorTable(subgraphs, d[0]), 0);
            String[] roles = {"payload", "weight"};
            for (int k = 0; k < 2; k++) {
                int ti = d[2 + k];
                long b = r.fieldU32(r.vectorTable(tensors, ti), 2, 0);
                if (b < 1 || b >= nBuffers) {
                    throw new TfedgeFormatException("subgraph " + d[0] + " operator " + d[1]
                            + ": the TFEDGE_DECODE " + roles[k] + " tensor " + ti
                            + " refers to buffer " + b + ", which cannot hold its data (the "
                            + "model has " + nBuffers + " buffers; buffer 0 is the empty one)");
                }
            }
        }
    }

    /** Each SignatureDef names a real subgraph and real tensors of it (as Python checks). */
    private void checkSignatures(int subgraphs, int nSubgraphs) throws TfedgeFormatException {
        int sigs = r.fieldRef(model, 7);
        int n = sigs == 0 ? 0 : r.vectorLength(sigs, 4);
        for (int i = 0; i < n; i++) {
            int sd = r.vectorTable(sigs, i);
            long sub = r.fieldU32(sd, 4, 0);
            if (sub >= nSubgraphs) {
                throw new TfedgeFormatException("signature def " + i + " refers to subgraph "
                        + sub + ", but the model has " + nSubgraphs + " subgraphs");
            }
            int tv = r.fieldRef(r.vectorTable(subgraphs, (int) sub), 0);
            int nTensors = tv == 0 ? 0 : r.vectorLength(tv, 4);
            for (int id = 0; id <= 1; id++) {
                int maps = r.fieldRef(sd, id);
                int m = maps == 0 ? 0 : r.vectorLength(maps, 4);
                for (int j = 0; j < m; j++) {
                    long t = r.fieldU32(r.vectorTable(maps, j), 1, 0);
                    if (t >= nTensors) {
                        throw new TfedgeFormatException("signature def " + i + " refers to "
                                + "tensor " + t + " of subgraph " + sub + ", which has "
                                + nTensors + " tensors");
                    }
                }
            }
        }
    }

    private static int[] indexMap(boolean[] drop) {
        int[] map = new int[drop.length];
        for (int i = 0, n = 0; i < drop.length; i++) {
            map[i] = drop[i] ? -1 : n++;
        }
        return map;
    }

    /** The reference checks of the Python reader that a flatbuffer cannot make. */
    private void checkStructure(int subgraphs, int nSubgraphs, int nBuffers, int nCodes,
            int metadata, int nMetadata) throws TfedgeFormatException {
        if (nSubgraphs == 0) {
            throw new TfedgeFormatException("the model has no subgraph");
        }
        for (int s = 0; s < nSubgraphs; s++) {
            int sg = r.vectorTable(subgraphs, s);
            int tv = r.fieldRef(sg, 0);
            int nTensors = tv == 0 ? 0 : r.vectorLength(tv, 4);
            for (int t = 0; t < nTensors; t++) {
                long b = r.fieldU32(r.vectorTable(tv, t), 2, 0);
                if (b >= Math.max(nBuffers, 1)) {
                    throw new TfedgeFormatException("subgraph " + s + " tensor " + t
                            + " refers to buffer " + b + ", but the model has " + nBuffers
                            + " buffers");
                }
            }
            int opv = r.fieldRef(sg, 3);
            int nOps = opv == 0 ? 0 : r.vectorLength(opv, 4);
            for (int o = 0; o < nOps; o++) {
                int op = r.vectorTable(opv, o);
                long code = r.fieldU32(op, 0, 0);
                if (code >= nCodes) {
                    throw new TfedgeFormatException("subgraph " + s + " operator " + o
                            + " has opcode index " + code + ", but the model has " + nCodes
                            + " operator codes");
                }
                for (int id = 1; id <= 2; id++) {
                    for (int idx : intVector(r.fieldRef(op, id))) {
                        if (idx < -1 || idx >= nTensors) {
                            throw new TfedgeFormatException("subgraph " + s + " operator " + o
                                    + " refers to tensor " + idx + ", but the subgraph has "
                                    + nTensors + " tensors");
                        }
                    }
                }
            }
            for (int id = 1; id <= 2; id++) {
                for (int idx : intVector(r.fieldRef(sg, id))) {
                    if (idx < 0 || idx >= nTensors) {
                        throw new TfedgeFormatException("subgraph " + s + " input/output refers"
                                + " to tensor " + idx + ", but the subgraph has " + nTensors
                                + " tensors");
                    }
                }
            }
        }
        checkSignatures(subgraphs, nSubgraphs);
        for (int i = 0; i < nMetadata; i++) {
            int m = r.vectorTable(metadata, i);
            long b = r.fieldU32(m, 1, 0);
            if (b >= nBuffers) {
                String name = r.fieldString(m, 0);
                throw new TfedgeFormatException("metadata "
                        + TfedgeFormatException.pyRepr(name == null ? "" : name)
                        + " refers to buffer " + b + ", but the model has " + nBuffers
                        + " buffers");
            }
        }
    }

    private int[] intVector(int vec) throws TfedgeFormatException {
        if (vec == 0) {
            return new int[0];
        }
        int n = r.vectorLength(vec, 4);
        int[] out = new int[n];
        for (int i = 0; i < n; i++) {
            out[i] = r.vectorI32(vec, i);
        }
        return out;
    }

    private static String pyList(int[] v) {
        StringBuilder sb = new StringBuilder("[");
        for (int i = 0; i < v.length; i++) {
            sb.append(i == 0 ? "" : ", ").append(v[i]);
        }
        return sb.append(']').toString();
    }

    /** {start, length} of buffer {@code i}'s data. */
    private int[] bufferData(int buffers, int i) throws TfedgeFormatException {
        if (buffers == 0 || i >= r.vectorLength(buffers, 4)) {
            return new int[] {0, 0}; // no such buffer: no data (the checks name the index)
        }
        int b = r.vectorTable(buffers, i);
        if (r.fieldI64(b, 1, 0) > 1) {
            throw new TfedgeFormatException("buffer " + i + " is stored past the flatbuffer "
                    + "(a model over 2 GiB), which this unpacker does not read");
        }
        int d = r.fieldRef(b, 0);
        if (d == 0) {
            return new int[] {0, 0};
        }
        return new int[] {d + 4, r.vectorLength(d, 1)};
    }

    // ---- public API -------------------------------------------------------------------------

    /** Expands a packed model into a new direct buffer in native byte order. */
    public static ByteBuffer expand(byte[] packed) throws TfedgeFormatException {
        return expand(packed, packed.length, null);
    }

    /** Expands the first {@code length} bytes of {@code packed}. */
    public static ByteBuffer expand(byte[] packed, int length) throws TfedgeFormatException {
        return expand(packed, length, null);
    }

    /** Expands the remaining bytes of {@code packed} (its position is not changed). */
    public static ByteBuffer expand(ByteBuffer packed) throws TfedgeFormatException {
        ByteBuffer d = packed.duplicate();
        byte[] b = new byte[d.remaining()];
        d.get(b);
        return expand(b);
    }

    /** Reads the stream to its end and expands it, e.g. from {@code AssetManager.open}. */
    public static ByteBuffer expand(InputStream in) throws IOException, TfedgeFormatException {
        ByteArrayOutputStream bos = new ByteArrayOutputStream(1 << 16);
        byte[] chunk = new byte[1 << 16];
        int n;
        while ((n = in.read(chunk)) > 0) {
            bos.write(chunk, 0, n);
        }
        return expand(bos.toByteArray());
    }

    /** Expands into a byte array (for tests and the command line). */
    public static byte[] expandToArray(byte[] packed) throws TfedgeFormatException {
        ByteBuffer b = expand(packed);
        byte[] out = new byte[b.remaining()];
        b.duplicate().get(out);
        return out;
    }

    /** What one expansion did, for the app's display and the benchmark. */
    public static final class Stats {
        /** Number of TFEDGE_DECODE payloads decoded. */
        public int payloads;
        /** Bytes they decoded to. */
        public long decodedBytes;
        /** Time spent decoding payloads (the rest is flatbuffer copying). */
        public long decodeNanos;
        /** Whether the input was packed by tfedge at all. */
        public boolean packed;
    }

    /** Expands the first {@code length} bytes; fills {@code stats} when it is not null. */
    public static ByteBuffer expand(byte[] packed, int length, Stats stats)
            throws TfedgeFormatException {
        return expand(packed, length, stats, false);
    }

    /**
     * As {@link #expand(byte[], int, Stats)}; with {@code trusted}, the resource bound on
     * decoded sizes (docs/FORMAT.md, "Resource bound": a payload of c bytes decodes to at
     * most max(R x c, F) bytes, {@link Payload#EXPANSION_RATIO}) is lifted, for a file whose
     * source the caller trusts.
     */
    public static ByteBuffer expand(byte[] packed, int length, Stats stats, boolean trusted)
            throws TfedgeFormatException {
        Unpacker u = new Unpacker(packed, length);
        u.trusted = trusted;
        ByteBuffer out;
        if (!u.packed) {
            out = ByteBuffer.allocateDirect(length).order(ByteOrder.nativeOrder());
            out.put(packed, 0, length);
            out.clear();
        } else {
            out = u.write();
        }
        if (stats != null) {
            stats.packed = u.packed;
            stats.payloads = u.decodes.size();
            long sum = 0;
            for (Decode d : u.decodes) {
                sum += d.payload == null ? 0 : d.payload.decodedSize;
            }
            stats.decodedBytes = sum;
            stats.decodeNanos = u.decodeNanos;
        }
        return out;
    }

    // ---- writing ----------------------------------------------------------------------------

    private ByteBuffer write() throws TfedgeFormatException {
        // Decode every payload in operator order, with the numpy expander's checks, before
        // anything is allocated for the output (as tfedge.expand does).
        Map<Integer, byte[]> data = new HashMap<Integer, byte[]>();
        long t0 = System.nanoTime();
        // The numpy expander's checks, in its order: first each operator's static checks
        // (type, shape, resource bound), then the payloads one operator after the other.
        long[] expectedSizes = new long[decodes.size()];
        long[] bounds = new long[decodes.size()];
        for (int i = 0; i < decodes.size(); i++) {
            Decode d = decodes.get(i);
            int es = Schema.tensorTypeSize(d.tensorType);
            if (es == 0) {
                throw new TfedgeFormatException("decoded tensor has type " + d.tensorType
                        + ", which has no fixed element size", d.name, -1);
            }
            long expected = es;
            for (int v : d.shape) {
                if (v < 0) {
                    throw new TfedgeFormatException("decoded tensor has a dynamic shape "
                            + pyList(d.shape), d.name, -1);
                }
                expected = expected > Long.MAX_VALUE / Math.max(v, 1) ? Long.MAX_VALUE
                        : expected * v;
            }
            long coded = d.data[1];
            long bound = trusted ? Payload.DEFAULT_BOUND
                    : Math.min(Payload.DEFAULT_BOUND, Payload.decodedBound(coded));
            if (expected > bound) {
                // Python prints the exact product; past 2^63 this reader says so instead.
                String size = expected == Long.MAX_VALUE ? "over 2^63" : "" + expected;
                throw new TfedgeFormatException(trusted
                        ? "the tensor's " + size + " bytes are over the "
                                + Payload.DEFAULT_BOUND + "-byte limit"
                        : "the tensor's " + size + " bytes are over the resource bound "
                                + "of a " + coded + "-byte payload, max("
                                + Payload.EXPANSION_RATIO + " x " + coded + ", "
                                + Payload.EXPANSION_FLOOR + ") bytes; a caller who trusts "
                                + "the file can lift it (trusted=True)", d.name, -1);
            }
            expectedSizes[i] = expected;
            bounds[i] = bound;
        }
        for (int i = 0; i < decodes.size(); i++) {
            Decode d = decodes.get(i);
            d.payload = Payload.parse(r.b, d.data[0], d.data[1], bounds[i], expectedSizes[i],
                    d.name);
            byte[] out = d.payload.decode();
            if (d.payload.elementType != d.tensorType) {
                throw new TfedgeFormatException("payload decodes to element type "
                        + d.payload.elementType + ", but the tensor has type " + d.tensorType
                        + " (" + Schema.tensorTypeName(d.tensorType) + ")", d.name, 7);
            }
            if (d.densify != null) {
                out = Densify.restore(d.densify, out, Schema.tensorTypeSize(d.tensorType));
            }
            byte[] previous = data.get(d.weightBuffer);
            if (previous != null && !Arrays.equals(previous, out)) {
                throw new TfedgeFormatException("two payloads decode to different data for "
                        + "shared buffer " + d.weightBuffer, d.name, -1);
            }
            data.put(d.weightBuffer, out);
            decodedSizes.put(d.weightBuffer, out.length);
        }
        decodeNanos = System.nanoTime() - t0;

        Sink.Counting counter = new Sink.Counting();
        writeFile(counter); // sizes the output and places every decoded buffer's data
        long decoded = 0;
        for (byte[] d : data.values()) {
            decoded += d.length;
        }
        // A well-formed file grows by padding and unshared vtables only; objects referenced
        // many times (possible only in a forged file) would multiply, so they are refused
        // (tfedge/tflite/_packed_checks.py makes the same check).
        long limit = MAX_UNSHARED_GROWTH * r.size + UNSHARED_SLACK;
        if (counter.total - decoded > limit) {
            throw r.bad("the expanded model would take over " + limit + " bytes besides its "
                    + "weights: objects are shared or the file is forged", -1);
        }
        if (counter.total > MAX_OUTPUT) {
            throw new TfedgeFormatException("the expanded model would take "
                    + counter.total + " bytes, over the " + MAX_OUTPUT + " bytes of one Java "
                    + "buffer");
        }
        // The zip archive appended to the file (the metadata's associated files) follows the
        // flatbuffer in the output too.
        AppendedArchive archive = AppendedArchive.find(r.b, r.size);
        int archiveBytes = archive == null ? 0 : archive.length(r.size);
        ByteBuffer out = ByteBuffer.allocateDirect(counter.pos + archiveBytes)
                .order(ByteOrder.nativeOrder());
        ByteBuffer le = out.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        for (Map.Entry<Integer, byte[]> e : data.entrySet()) {
            le.position(dataPos.get(e.getKey()));
            le.put(e.getValue());
            e.setValue(null); // let each array go once it is in place
        }
        le.clear();
        Sink.Buffer sink = new Sink.Buffer(le);
        writeFile(sink);
        if (sink.pos != counter.pos) {
            throw new IllegalStateException("size changed between passes");
        }
        if (archive != null) {
            archive.copyTo(r.b, r.size, out, counter.pos);
        }
        out.clear();
        return out;
    }

    private void writeFile(Sink s) throws TfedgeFormatException {
        subgraph = -1;
        signatureSubgraph = -1;
        s.zeros(4);
        s.write(new byte[] {'T', 'F', 'L', '3'}, 0, 4);
        int root = copyTable(s, model, Schema.MODEL);
        s.putI32(0, root);
    }

    /** Copies the table at {@code src} of type {@code type}; returns its new position. */
    private int copyTable(Sink s, int src, int type) throws TfedgeFormatException {
        int vt = r.vtable(src);
        int vtSize = r.u16(vt);
        int tblSize = r.u16(vt + 2);
        int fields = (vtSize - 4) / 2;
        int known = Schema.FIELD_COUNT[type];
        if (known >= 0) {
            for (int id = known; id < fields; id++) {
                if (r.u16(vt + 4 + 2 * id) != 0) {
                    throw new TfedgeFormatException(Schema.NAMES[type] + " at byte " + src
                            + " has field " + id + ", unknown to this unpacker (a newer "
                            + "schema)", null, src);
                }
            }
        }
        if (type == Schema.SIGNATURE_DEF) {
            signatureSubgraph = (int) r.fieldU32(src, 4, 0);
        }
        // A metadata vector left empty is dropped, as tfedge.expand drops it: the field is
        // absent from the copied vtable (its inline slot stays, unreferenced).
        int dropField = type == Schema.MODEL && allMetadataRemoved() ? 6 : -1;
        s.align(2, 0);
        int newVt = s.pos;
        if (dropField >= 0 && dropField < fields) {
            byte[] copy = Arrays.copyOfRange(r.b, vt, vt + vtSize);
            copy[4 + 2 * dropField] = 0;
            copy[5 + 2 * dropField] = 0;
            s.write(copy, 0, vtSize);
        } else {
            s.write(r.b, vt, vtSize);
        }
        s.align(8, src & 7);
        int t = s.pos;
        s.write(r.b, src, tblSize);
        s.putI32(t, t - newVt);
        patchScalars(s, src, t, type);
        for (int[] f : Schema.FIELDS[type]) {
            int id = f[0];
            if (id >= fields || id == dropField) {
                continue;
            }
            int fo = r.u16(vt + 4 + 2 * id);
            if (fo == 0) {
                continue;
            }
            if (fo + 4 > tblSize) {
                throw r.bad(Schema.NAMES[type] + " field " + id + " runs past its table", src);
            }
            int child = r.deref(src + fo);
            int at;
            switch (f[1]) {
                case Schema.STRING:
                    at = copyString(s, child);
                    break;
                case Schema.VECTOR:
                    at = writeScalarVector(s, type, id, child, f[2]);
                    break;
                case Schema.TABLE:
                    at = copyTable(s, child, f[2]);
                    break;
                case Schema.TABLE_VECTOR:
                    at = copyTableVector(s, type, id, child, f[2]);
                    break;
                default:
                    int tf = r.fieldOffset(src, f[3]);
                    int member = tf == 0 ? 0 : r.u8(src + tf);
                    if (member == 0) {
                        // A value without a type: readers ignore it, so it is dropped.
                        s.putI32(t + fo, 0);
                        continue;
                    }
                    int memberType = Schema.unionMember(f[2], member);
                    if (memberType < 0) {
                        throw new TfedgeFormatException(Schema.unionName(f[2]) + " type "
                                + member + " is unknown to this unpacker (a newer schema)",
                                null, src);
                    }
                    if (type == Schema.DIMENSION_METADATA && restoring != null
                            && restoringDim >= 0) {
                        // The emptied index vector of a densify decoder's sparse tensor.
                        at = writeIndexVector(s, member, id == 3
                                ? restoring.segments[restoringDim]
                                : restoring.indices[restoringDim]);
                    } else {
                        at = copyTable(s, child, memberType);
                    }
                    break;
            }
            s.putI32(t + fo, at - (t + fo));
        }
        return t;
    }

    private boolean allMetadataRemoved() {
        if (removedMetadata.length == 0) {
            return false;
        }
        for (boolean removed : removedMetadata) {
            if (!removed) {
                return false;
            }
        }
        return true;
    }

    private void patchScalars(Sink s, int src, int t, int type) throws TfedgeFormatException {
        if (type == Schema.TENSOR) {
            patchIndex(s, src, t, 2, bufferMap);
        } else if (type == Schema.METADATA) {
            patchIndex(s, src, t, 1, bufferMap);
        } else if (type == Schema.OPERATOR) {
            patchIndex(s, src, t, 0, opcodeMap);
        } else if (type == Schema.TENSOR_MAP && signatureSubgraph >= 0
                && signatureSubgraph < tensorMaps.size()) {
            patchIndex(s, src, t, 1, tensorMaps.get(signatureSubgraph));
        }
    }

    private void patchIndex(Sink s, int src, int t, int id, int[] map)
            throws TfedgeFormatException {
        int fo = r.fieldOffset(src, id);
        if (fo == 0) {
            return;
        }
        long old = r.u32(src + fo);
        if (old < map.length) {
            s.putI32(t + fo, map[(int) old]);
        }
    }

    private int copyString(Sink s, int src) throws TfedgeFormatException {
        int n = r.vectorLength(src, 1);
        s.align(4, 0);
        int at = s.pos;
        s.i32(n);
        s.write(r.b, src + 4, n);
        s.zeros(1);
        return at;
    }

    private int writeScalarVector(Sink s, int type, int id, int src, int es)
            throws TfedgeFormatException {
        int n = r.vectorLength(src, es);
        int[] map = null;
        boolean dropRemoved = false;
        if (type == Schema.MODEL && id == 5) { // metadata_buffer: buffer indices
            map = bufferMap;
            dropRemoved = true;
        } else if ((type == Schema.SUBGRAPH && (id == 1 || id == 2))
                || (type == Schema.OPERATOR && (id == 1 || id == 2 || id == 8))) {
            map = tensorMaps.get(subgraph);
        }
        if (map != null) {
            int[] v = new int[n];
            int k = 0;
            for (int i = 0; i < n; i++) {
                int x = r.vectorI32(src, i);
                if (x >= 0) {
                    int y = map[Math.min(x, map.length - 1)];
                    if (y < 0 && dropRemoved) {
                        continue;
                    }
                    x = y;
                }
                v[k++] = x;
            }
            s.align(4, 0);
            int at = s.pos;
            s.i32(k);
            for (int i = 0; i < k; i++) {
                s.i32(v[i]);
            }
            return at;
        }
        int dataAlign = (type == Schema.BUFFER) ? 16 : Math.max(4, es);
        s.align(dataAlign, dataAlign - 4);
        int at = s.pos;
        s.i32(n);
        s.write(r.b, src + 4, n * es);
        return at;
    }

    private int copyTableVector(Sink s, int type, int id, int src, int elemType)
            throws TfedgeFormatException {
        int n = r.vectorLength(src, 4);
        int[] map = null;
        boolean[] drop = null;
        if (type == Schema.MODEL && id == 1) {
            map = opcodeMap;
        } else if (type == Schema.MODEL && id == 4) {
            map = bufferMap;
        } else if (type == Schema.MODEL && id == 6) {
            drop = removedMetadata;
        } else if (type == Schema.SUBGRAPH && id == 0) {
            map = tensorMaps.get(subgraph);
        } else if (type == Schema.SUBGRAPH && id == 3) {
            drop = removedOps.get(subgraph);
        }
        if (map != null) {
            drop = new boolean[n];
            for (int i = 0; i < n && i < map.length; i++) {
                drop[i] = map[i] < 0;
            }
        }
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (drop == null || !drop[i]) {
                k++;
            }
        }
        s.align(4, 0);
        int at = s.pos;
        s.i32(k);
        int slots = s.pos;
        s.zeros(4 * k);
        int j = 0;
        for (int i = 0; i < n; i++) {
            if (drop != null && drop[i]) {
                continue;
            }
            int elem = r.vectorTable(src, i);
            int pos;
            if (type == Schema.MODEL && id == 2) {
                subgraph = i;
                pos = copyTable(s, elem, elemType);
            } else if (type == Schema.SUBGRAPH && id == 3
                    && densifyOps.containsKey(key(subgraph, i))) {
                pos = writeDensifyOp(s, densifyOps.get(key(subgraph, i)));
            } else if (type == Schema.SUBGRAPH && id == 0) {
                restoring = densifyTensors.get(key(subgraph, i));
                pos = copyTable(s, elem, elemType);
                restoring = null;
            } else if (type == Schema.SPARSITY && id == 2 && restoring != null) {
                restoringDim = i;
                pos = copyTable(s, elem, elemType);
                restoringDim = -1;
            } else if (type == Schema.MODEL && id == 4 && decodedBuffers.containsKey(i)) {
                pos = writeDecodedBuffer(s, i, decodedSizes.get(i));
            } else {
                pos = copyTable(s, elem, elemType);
            }
            int slot = slots + 4 * j++;
            s.putI32(slot, pos - slot);
        }
        return at;
    }

    /**
     * Writes a new table's vtable and then the table: its soffset and {@code size - 4}
     * zero bytes, to be filled in with {@link Sink#putI32}. {@code fields} are the
     * offsets in the table of fields 0, 1, ... (each 4 bytes). Returns the table's
     * position.
     */
    private static int startTable(Sink s, int size, int... fields) {
        s.align(2, 0);
        int vt = s.pos;
        s.u16(4 + 2 * fields.length); // vtable size
        s.u16(size); // table size
        for (int f : fields) {
            s.u16(f);
        }
        s.align(4, 0);
        int t = s.pos;
        s.i32(t - vt);
        s.zeros(size - 4);
        return t;
    }

    /** A DENSIFY operator (input S, output D, no options) in place of a densify decoder. */
    private int writeDensifyOp(Sink s, Densify.Target t) {
        int[] tensors = tensorMaps.get(subgraph);
        // opcode_index, inputs and outputs after the soffset
        int t0 = startTable(s, 16, 4, 8, 12);
        s.putI32(t0 + 4, opcodeMap[densifyCode]);
        int in = s.pos;
        s.i32(1);
        s.i32(tensors[t.sparse]);
        int out = s.pos;
        s.i32(1);
        s.i32(tensors[t.dense]);
        s.putI32(t0 + 8, in - (t0 + 8));
        s.putI32(t0 + 12, out - (t0 + 12));
        return t0;
    }

    /** A new Int32Vector, Uint16Vector or Uint8Vector table (union member kind) of v. */
    private int writeIndexVector(Sink s, int kind, int[] v) {
        int es = Densify.vectorElementSize(kind);
        int t0 = startTable(s, 8, 4); // values, after the soffset
        int vec = s.pos;
        s.i32(v.length);
        byte[] bytes = new byte[v.length * es];
        for (int i = 0; i < v.length; i++) {
            for (int k = 0; k < es; k++) {
                bytes[i * es + k] = (byte) (v[i] >>> (8 * k));
            }
        }
        s.write(bytes, 0, bytes.length);
        s.putI32(t0 + 4, vec - (t0 + 4));
        return t0;
    }

    /**
     * The static checks of every densify decoder (docs/FORMAT.md section 1.1), in the order
     * and words of tfedge/tflite/_densify.py's check_densify_ops.
     */
    private void checkDensify(int subgraphs, int nBuffers, int codes, int nCodes,
            List<int[]> ops, int version) throws TfedgeFormatException {
        Map<Long, Integer> refs = null;
        for (int[] d : ops) {
            if (d[4] == 0) {
                continue;
            }
            int sg = r.vectorTable(subgraphs, d[0]);
            int tensors = r.fieldRef(sg, 0);
            int nTensors = tensors == 0 ? 0 : r.vectorLength(tensors, 4);
            String name = r.fieldString(r.vectorTable(tensors, d[3]), 3);
            name = name == null ? "" : name;
            String where = "subgraph " + d[0] + " operator " + d[1] + ": the densify decoder";
            if (d[4] != Densify.OPTIONS_SIZE) {
                throw new TfedgeFormatException(where + " has " + d[4] + " bytes of custom "
                        + "options; a densify decoder's are " + Densify.OPTIONS_SIZE
                        + " (the sparse tensor's index)", name, -1);
            }
            if (version < Densify.FORMAT_VERSION) {
                throw new TfedgeFormatException(where + " is in a file of format version "
                        + (version < 0 ? "None" : "" + version) + "; densify decoders need "
                        + "version " + Densify.FORMAT_VERSION, name, -1);
            }
            long target = r.u32(d[5] + 4);
            if (target >= nTensors || target == d[2] || target == d[3]) {
                throw new TfedgeFormatException(where + " names sparse tensor " + target
                        + ", which is not another tensor of the subgraph (" + nTensors
                        + " tensors)", name, -1);
            }
            if (densifyTensors.containsKey(key(d[0], (int) target))) {
                throw new TfedgeFormatException(where + " names sparse tensor " + target
                        + ", which another decoder names", name, -1);
            }
            Densify.Target t = new Densify.Target();
            t.subgraph = d[0];
            t.op = d[1];
            t.sparse = (int) target;
            t.dense = d[3];
            int st = r.vectorTable(tensors, t.sparse);
            int dt = r.vectorTable(tensors, t.dense);
            t.sparseName = r.fieldString(st, 3);
            t.sparseName = t.sparseName == null ? "" : t.sparseName;
            t.shape = intVector(r.fieldRef(st, 0));
            int[] denseShape = intVector(r.fieldRef(dt, 0));
            int sType = r.fieldU8(st, 1, 0);
            int dType = r.fieldU8(dt, 1, 0);
            if (sType != dType || !Arrays.equals(t.shape, denseShape)) {
                throw new TfedgeFormatException(where + ": the sparse tensor has type "
                        + sType + " and shape " + pyList(t.shape) + ", its dense tensor '"
                        + name + "' type " + dType + " and shape " + pyList(denseShape)
                        + "; they must be equal", t.sparseName, -1);
            }
            String why = Densify.check(r, r.fieldRef(st, 6), t);
            if (why != null) {
                throw new TfedgeFormatException(where + ": the sparse tensor " + why,
                        t.sparseName, -1);
            }
            if (refs == null) {
                refs = new HashMap<Long, Integer>();
                for (int s2 = 0; s2 < r.vectorLength(subgraphs, 4); s2++) {
                    int tv = r.fieldRef(r.vectorTable(subgraphs, s2), 0);
                    for (int i = 0; tv != 0 && i < r.vectorLength(tv, 4); i++) {
                        long b = r.fieldU32(r.vectorTable(tv, i), 2, 0);
                        refs.put(b, refs.containsKey(b) ? refs.get(b) + 1 : 1);
                    }
                }
            }
            long b = r.fieldU32(st, 2, 0);
            int buffers = r.fieldRef(model, 4);
            if (b < 1 || b >= nBuffers || refs.get(b) != 1
                    || bufferData(buffers, (int) b)[1] != 0) {
                throw new TfedgeFormatException(where + ": the sparse tensor's buffer " + b
                        + " must be an empty buffer of its own (1 .. " + (nBuffers - 1)
                        + ") to take its values", t.sparseName, -1);
            }
            t.sparseBuffer = (int) b;
            if (densifyCode < 0) {
                for (int i = 0; i < nCodes && densifyCode < 0; i++) {
                    int c = r.vectorTable(codes, i);
                    int builtin = Math.max(r.fieldI32(c, 3, 0), (byte) r.fieldU8(c, 0, 0));
                    if (builtin == Densify.BUILTIN_DENSIFY) {
                        densifyCode = i;
                    }
                }
            }
            if (densifyCode < 0) {
                throw new TfedgeFormatException(where + ": the model has no DENSIFY operator "
                        + "code to restore", t.sparseName, -1);
            }
            densifyOps.put(key(d[0], d[1]), t);
            densifyTensors.put(key(d[0], t.sparse), t);
        }
    }

    /** A new Buffer table for a decoded weight; its data is placed, not written, here. */
    private int writeDecodedBuffer(Sink s, int index, int n) {
        int t = startTable(s, 8, 4); // data, after the soffset
        s.align(16, 12);
        int vec = s.pos;
        s.i32(n);
        if (s.counting()) {
            dataPos.put(index, s.pos);
        }
        s.skip(n); // the data was decoded into place before this pass
        s.putI32(t + 4, vec - (t + 4));
        return t;
    }
}
