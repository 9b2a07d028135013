package org.tfedge.unpacker;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayInputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;
import java.util.Random;
import org.junit.Test;

/**
 * The model surgery (docs/FORMAT.md section 1) on packed models built here, field by field:
 * y = x + w where w is packed.
 */
public class UnpackerTest {
    static final float[] W = {0.5f, -1.25f, 3f};
    static final byte[] KEEP = {9, 8, 7, 6, 5};

    /** Options for the model builder. */
    static final class Spec {
        int weightType = 0; // FLOAT32
        int[] weightShape = {3};
        String metadataJson = "{\"format_version\": 1, \"producer\": \"test\"}";
        boolean withMetadata = true;
        boolean withDecode = true;
        byte[] payload = payload();
        boolean sharedWeight = false; // a second weight tensor sharing w's buffer
        boolean decodeTwoInputs = false;
        boolean extraTensorField = false;
    }

    static byte[] payload() {
        byte[] book = Payloads.floats(W);
        return Payloads.payload(0, 1, 0, 4, 12, Payloads.codebookPrefix(book, 4),
                Payloads.fixedStream(new int[] {0, 1, 2}, 2));
    }

    static Fb.Table tensor(String name, int type, int buffer, int... shape) {
        return Fb.table().child(0, Fb.ints(shape)).u8(1, type).i32(2, buffer)
                .child(3, Fb.str(name));
    }

    /** Buffers: 0 empty, 1 w (packed: empty), 2 x, 3 y, 4 keep, 5 payload, 6 tfedge json. */
    static byte[] build(Spec s) {
        Fb.Table decodeCode = Fb.table().u8(0, 32).child(1, Fb.str("TFEDGE_DECODE"))
                .i32(2, 1).i32(3, 32);
        Fb.Table addCode = Fb.table().u8(0, 0).i32(2, 1).i32(3, 0);
        Fb.Table w = tensor("w", s.weightType, 1, s.weightShape);
        if (s.extraTensorField) {
            w.i32(12, 5);
        }
        Fb.Table x = tensor("x", 0, 2, 3);
        Fb.Table y = tensor("y", 0, 3, 3);
        Fb.Table p = tensor("w/tfedge_payload", 3, 5, s.payload.length);
        Fb.Table w2 = tensor("w2", s.weightType, 1, s.weightShape);
        Fb.Table p2 = tensor("w2/tfedge_payload", 3, 5, s.payload.length);
        Fb.Table add = Fb.table().i32(0, 1).child(1, Fb.ints(1, 0)).child(2, Fb.ints(2))
                .u8(3, 11).child(4, Fb.table().u8(0, 1)); // AddOptions{fused_activation=RELU}
        Fb.Node[] tensors;
        Fb.Node[] ops;
        if (!s.withDecode) {
            tensors = new Fb.Node[] {w, x, y};
            ops = new Fb.Node[] {add};
        } else if (s.sharedWeight) {
            tensors = new Fb.Node[] {w, x, y, w2, p, p2};
            ops = new Fb.Node[] {decodeOp(4, 0, false), decodeOp(5, 3, false), add};
        } else {
            tensors = new Fb.Node[] {w, x, y, p};
            ops = new Fb.Node[] {decodeOp(3, 0, s.decodeTwoInputs), add};
        }
        Fb.Table sg = Fb.table().child(0, Fb.tables(tensors)).child(1, Fb.ints(1))
                .child(2, Fb.ints(2)).child(3, Fb.tables(ops)).child(4, Fb.str("main"));
        Fb.Node[] buffers = {
            Fb.table(), Fb.table(), Fb.table(), Fb.table(),
            Fb.table().child(0, Fb.bytes(KEEP)),
            Fb.table().child(0, Fb.bytes(s.payload)),
            Fb.table().child(0, Fb.bytes(s.metadataJson.getBytes(FlatReader.UTF8))),
        };
        Fb.Node keep = Fb.table().child(0, Fb.str("keep")).i32(1, 4);
        Fb.Node tfedge = Fb.table().child(0, Fb.str("tfedge")).i32(1, 6);
        Fb.Node[] metadata = s.withMetadata ? new Fb.Node[] {tfedge, keep} : new Fb.Node[] {keep};
        Fb.Table sig = Fb.table()
                .child(0, Fb.tables(Fb.table().child(0, Fb.str("x")).i32(1, 1)))
                .child(1, Fb.tables(Fb.table().child(0, Fb.str("y")).i32(1, 2)))
                .child(2, Fb.str("serving_default")).child(3, Fb.str("old tag")).i32(4, 0);
        Fb.Table model = Fb.table().i32(0, 3)
                .child(1, Fb.tables(s.withDecode ? new Fb.Node[] {decodeCode, addCode}
                        : new Fb.Node[] {addCode, decodeCode}))
                .child(2, Fb.tables(sg)).child(3, Fb.str("test model"))
                .child(4, Fb.tables(buffers)).child(6, Fb.tables(metadata))
                .child(7, Fb.tables(sig));
        if (!s.withDecode) {
            add.i32(0, 0); // ADD is code 0 here
        }
        return Fb.finish(model, "TFL3");
    }

    static Fb.Table decodeOp(int payloadTensor, int weightTensor, boolean twoInputs) {
        return Fb.table().i32(0, 0)
                .child(1, twoInputs ? Fb.ints(payloadTensor, 1) : Fb.ints(payloadTensor))
                .child(2, Fb.ints(weightTensor));
    }

    static FlatReader expanded(byte[] packed) throws TfedgeFormatException {
        ByteBuffer b = Unpacker.expand(packed);
        assertTrue(b.isDirect());
        assertEquals(ByteOrder.nativeOrder(), b.order());
        assertEquals(0, b.position());
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return new FlatReader(out, out.length);
    }

    static byte[] data(FlatReader r, int buffers, int i) throws TfedgeFormatException {
        int d = r.fieldRef(r.vectorTable(buffers, i), 0);
        if (d == 0) {
            return new byte[0];
        }
        return Arrays.copyOfRange(r.b, d + 4, d + 4 + r.vectorLength(d, 1));
    }

    static void assertError(byte[] packed, String message) {
        try {
            Unpacker.expand(packed);
            fail("expected: " + message);
        } catch (TfedgeFormatException e) {
            assertEquals(message, e.getMessage());
        }
    }

    @Test
    public void undoesTheSurgery() throws Exception {
        FlatReader r = expanded(build(new Spec()));
        assertEquals("TFL3", new String(r.b, 4, 4, "US-ASCII"));
        int m = r.root();
        assertEquals(3, r.fieldU32(m, 0, 0));
        assertEquals("test model", r.fieldString(m, 3));
        // The TFEDGE_DECODE code is gone; ADD moves from code 1 to 0.
        int codes = r.fieldRef(m, 1);
        assertEquals(1, r.vectorLength(codes, 4));
        assertEquals(0, r.fieldI32(r.vectorTable(codes, 0), 3, -1));
        int sg = r.vectorTable(r.fieldRef(m, 2), 0);
        int tensors = r.fieldRef(sg, 0);
        assertEquals(3, r.vectorLength(tensors, 4));
        assertEquals("w", r.fieldString(r.vectorTable(tensors, 0), 3));
        int ops = r.fieldRef(sg, 3);
        assertEquals(1, r.vectorLength(ops, 4));
        int add = r.vectorTable(ops, 0);
        assertEquals(0, r.fieldU32(add, 0, -1));
        int in = r.fieldRef(add, 1);
        assertEquals(1, r.vectorI32(in, 0));
        assertEquals(0, r.vectorI32(in, 1));
        assertEquals(11, r.fieldU8(add, 3, 0));
        assertEquals(1, r.fieldU8(r.fieldRef(add, 4), 0, 0));
        assertEquals("main", r.fieldString(sg, 4));
        // Buffers: the payload and the tfedge JSON are gone, w holds the decoded floats.
        int buffers = r.fieldRef(m, 4);
        assertEquals(5, r.vectorLength(buffers, 4));
        assertArrayEquals(Payloads.floats(W), data(r, buffers, 1));
        assertArrayEquals(KEEP, data(r, buffers, 4));
        int wData = r.fieldRef(r.vectorTable(buffers, 1), 0) + 4;
        assertEquals("weight data is 16-byte aligned", 0, wData % 16);
        // Metadata: only "keep", its buffer renumbered from 4 to 4 (unchanged: 4 < 5).
        int meta = r.fieldRef(m, 6);
        assertEquals(1, r.vectorLength(meta, 4));
        assertEquals("keep", r.fieldString(r.vectorTable(meta, 0), 0));
        assertEquals(4, r.fieldU32(r.vectorTable(meta, 0), 1, -1));
        int sig = r.vectorTable(r.fieldRef(m, 7), 0);
        assertEquals("serving_default", r.fieldString(sig, 2));
        assertEquals("a deprecated string field stays a string", "old tag",
                r.fieldString(sig, 3));
        assertEquals(2, r.fieldU32(r.vectorTable(r.fieldRef(sig, 1), 0), 1, -1));
    }

    @Test
    public void expandingTwiceGivesTheSameBytes() throws Exception {
        byte[] packed = build(new Spec());
        byte[] once = Unpacker.expandToArray(packed);
        assertArrayEquals(once, Unpacker.expandToArray(packed));
        // An expanded model is not packed: it comes back as it is.
        assertArrayEquals(once, Unpacker.expandToArray(once));
        ByteBuffer fromStream = Unpacker.expand(new ByteArrayInputStream(packed));
        byte[] b = new byte[fromStream.remaining()];
        fromStream.get(b);
        assertArrayEquals(once, b);
    }

    @Test
    public void plainModelIsReturnedAsItIs() throws Exception {
        Spec s = new Spec();
        s.withDecode = false;
        s.withMetadata = false;
        byte[] plain = build(s);
        Unpacker.Stats stats = new Unpacker.Stats();
        ByteBuffer b = Unpacker.expand(plain, plain.length, stats);
        byte[] out = new byte[b.remaining()];
        b.get(out);
        assertArrayEquals(plain, out);
        assertEquals(false, stats.packed);
    }

    @Test
    public void sharedBufferDecodesOnce() throws Exception {
        Spec s = new Spec();
        s.sharedWeight = true;
        byte[] packed = build(s);
        Unpacker.Stats stats = new Unpacker.Stats();
        ByteBuffer b = Unpacker.expand(packed, packed.length, stats);
        assertEquals(2, stats.payloads);
        byte[] out = new byte[b.remaining()];
        b.get(out);
        FlatReader r = new FlatReader(out, out.length);
        int m = r.root();
        int sg = r.vectorTable(r.fieldRef(m, 2), 0);
        assertEquals(4, r.vectorLength(r.fieldRef(sg, 0), 4));
        assertEquals(1, r.vectorLength(r.fieldRef(sg, 3), 4));
        int buffers = r.fieldRef(m, 4);
        assertEquals(5, r.vectorLength(buffers, 4));
        assertArrayEquals(Payloads.floats(W), data(r, buffers, 1));
    }

    @Test
    public void fileErrors() {
        assertError(new byte[5], "byte 0: not a .tflite file: 5 bytes is shorter than a "
                + "flatbuffer header");
        byte[] p = build(new Spec());
        p[7] = 'X';
        assertError(p, "byte 4: not a .tflite file: file identifier is b'TFLX', expected "
                + "b'TFL3' (is this a TensorFlow SavedModel, a .keras or a truncated file?)");
        p = build(new Spec());
        p[2] = 1;
        long root = Payload.le32(p, 0);
        assertError(p, "byte 0: truncated .tflite file: root table at byte " + root + " is past "
                + "the end (" + p.length + " bytes)");
    }

    @Test
    public void newerFormatVersion() {
        Spec s = new Spec();
        s.metadataJson = "{\"format_version\": 5}";
        assertError(build(s), "packed format version 5 is newer than this tfedge reads (4): "
                + "upgrade tfedge");
    }

    /**
     * A version-2 file: w = {0.5, -1.25, 3} from a per-channel codebook (C = 3, R = 1, K = 3,
     * G = 1: index 0 is the shared 9).
     */
    @Test
    public void expandsVersion2File() throws Exception {
        Spec s = new Spec();
        s.metadataJson = "{\"format_version\": 2, \"producer\": \"test\"}";
        s.payload = Payloads.payload(0, 2, 0, 4, 12,
                Payloads.channelCodebookPrefix(Payloads.floats(9f, 0.5f, 7f, 9f, 8f, -1.25f,
                        9f, 3f, 6f), 4, 3, 1),
                Payloads.fixedStream(new int[] {1, 2, 1}, 2));
        assertEquals(2, s.payload[4]);
        assertEquals(1, s.payload[30]);
        FlatReader r = expanded(build(s));
        int buffers = r.fieldRef(r.root(), 4);
        assertArrayEquals(Payloads.floats(W), data(r, buffers, 1));
    }

    @Test
    public void payloadErrorsNameTheTensor() {
        Spec s = new Spec();
        s.payload = payload();
        s.payload[s.payload.length - 1] ^= 0x40;
        try {
            Unpacker.expand(build(s));
            fail();
        } catch (TfedgeFormatException e) {
            assertTrue(e.getMessage(), e.getMessage().startsWith(
                    "tensor 'w', byte 24: CRC mismatch: header says 0x"));
        }
        s = new Spec();
        s.weightShape = new int[] {4};
        assertError(build(s), "tensor 'w', byte 12: decoded size 12 disagrees with the "
                + "tensor's 16 bytes");
        s = new Spec();
        s.weightType = 2;
        assertError(build(s), "tensor 'w', byte 7: payload decodes to element type 0, but the "
                + "tensor has type 2 (INT32)");
        s = new Spec();
        s.weightType = 5;
        assertError(build(s), "tensor 'w': decoded tensor has type 5, which has no fixed "
                + "element size");
        s = new Spec();
        s.weightShape = new int[] {-1, 3};
        assertError(build(s), "tensor 'w': decoded tensor has a dynamic shape [-1, 3]");
    }

    @Test
    public void decodeOperatorShape() {
        Spec s = new Spec();
        s.decodeTwoInputs = true;
        assertError(build(s), "subgraph 0 operator 0: TFEDGE_DECODE must have one input and "
                + "one output, has 2 and 1");
    }

    @Test
    public void newerSchemaFieldIsRefused() {
        Spec s = new Spec();
        s.extraTensorField = true;
        try {
            Unpacker.expand(build(s));
            fail();
        } catch (TfedgeFormatException e) {
            assertTrue(e.getMessage(), e.getMessage().contains("Tensor at byte"));
            assertTrue(e.getMessage(), e.getMessage().contains("has field 12, unknown"));
        }
    }

    /** Truncations and random byte changes: a result or a format error, nothing else. */
    @Test
    public void corruptModelsGiveOnlyFormatErrors() {
        byte[] seed = build(new Spec());
        Random rng = new Random(11);
        int errors = 0;
        for (int len = 0; len < seed.length; len++) {
            errors += tryExpand(Arrays.copyOf(seed, len)) ? 0 : 1;
        }
        for (int t = 0; t < 4000; t++) {
            byte[] p = seed.clone();
            int flips = 1 + rng.nextInt(4);
            for (int f = 0; f < flips; f++) {
                p[rng.nextInt(p.length)] = (byte) rng.nextInt(256);
            }
            errors += tryExpand(p) ? 0 : 1;
        }
        assertTrue("most truncations fail", errors > seed.length / 2);
    }

    private static boolean tryExpand(byte[] p) {
        try {
            Unpacker.expand(p);
            return true;
        } catch (TfedgeFormatException e) {
            return false;
        }
    }

    /**
     * The counting pass measures sizes past 2 GiB exactly (it used to saturate at the limit
     * it was checked against, so a 2 GiB - 64 byte model overflowed the output buffer).
     */
    @Test
    public void countingSinkMeasuresPastTwoGiB() {
        Sink.Counting c = new Sink.Counting();
        c.skip(Integer.MAX_VALUE - 64);
        c.zeros(1000);
        c.skip(Integer.MAX_VALUE);
        assertEquals(2L * Integer.MAX_VALUE - 64 + 1000, c.total);
        assertEquals(Integer.MAX_VALUE, c.pos);
    }

    /** Metadata that is not strictly one integer format_version is refused, as in Python. */
    @Test
    public void strictMetadata() throws Exception {
        String[] bad = {"{\"format_version\": \"1\"}", "{\"format_version\": 1.5}",
                "{\"format_version\": true}", "{\"x\": {\"format_version\": 1}}",
                "{\"format_version\": 1, \"format_version\": 1}", "[1]", "{format_version: 1}",
                "{\"format_version\": 1, \"x\": NaN}", "{\"format_version\": 01}"};
        for (String json : bad) {
            Spec s = new Spec();
            s.metadataJson = json;
            try {
                Unpacker.expand(build(s));
                fail("accepted " + json);
            } catch (TfedgeFormatException e) {
                assertTrue(e.getMessage(), e.getMessage().contains("'tfedge' metadata entry"));
            }
        }
        Spec ok = new Spec();
        ok.metadataJson = " {\"format\\u005fversion\" : 1 , \"p\": [{\"a\": -0.5e+3}]}\n";
        Unpacker.expand(build(ok));
    }
}
