package org.tfedge.unpacker;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.Test;

/** The payload reader against hand-made payloads (docs/FORMAT.md section 2). */
public class PayloadTest {
    static final int DENSE = 0;
    static final int SPARSE = 1;
    static final int RAW = 0;
    static final int BOOK = 1;
    static final int CHANNEL = 2;
    static final int FLOAT32 = 0;
    static final int INT8 = 9;
    static final long NO_SIZE = -1;

    static byte[] decode(byte[] p) throws TfedgeFormatException {
        return Payload.decode(p, 0, p.length, Payload.DEFAULT_BOUND, NO_SIZE, "w");
    }

    static void assertError(byte[] p, String message) {
        assertError(p, NO_SIZE, message);
    }

    static void assertError(byte[] p, long expected, String message) {
        try {
            Payload.decode(p, 0, p.length, Payload.DEFAULT_BOUND, expected, "w");
            fail("expected: " + message);
        } catch (TfedgeFormatException e) {
            assertEquals(message, e.getMessage());
        }
    }

    static byte[] denseRawFloats() {
        byte[] data = Payloads.floats(1f, -2f, 3.5f);
        return Payloads.payload(DENSE, RAW, FLOAT32, 4, 12,
                Payloads.fixedStream(Payloads.unsigned(data), 8));
    }

    // ---- round trips, one per codec ------------------------------------------------------

    @Test
    public void denseRawFixed() throws Exception {
        assertArrayEquals(Payloads.floats(1f, -2f, 3.5f), decode(denseRawFloats()));
    }

    @Test
    public void headerBytesAreExact() throws Exception {
        byte[] p = denseRawFloats();
        byte[] head = Arrays.copyOf(p, 24);
        byte[] want = {'T', 'F', 'E', 'P', 1, 0, 0, 0, 4, 0, 0, 0, 12, 0, 0, 0, 0, 0, 0, 0,
            22, 0, 0, 0};
        assertArrayEquals(want, head);
        Payload h = Payload.parse(p, 0, p.length, 100, 12, "w");
        assertEquals(12, h.decodedSize);
        assertEquals(3, h.elementCount());
        assertEquals(FLOAT32, h.elementType);
    }

    @Test
    public void denseRawHuffman() throws Exception {
        byte[] data = {5, 5, 5, 7, 5, 9, 5, 7};
        int[] lengths = new int[256];
        lengths[5] = 1;
        lengths[7] = 2;
        lengths[9] = 2;
        byte[] p = Payloads.payload(DENSE, RAW, INT8, 1, 8,
                Payloads.huffmanStream(Payloads.unsigned(data), 8, lengths, 3));
        assertArrayEquals(data, decode(p));
    }

    @Test
    public void denseCodebookFixedEveryWidth() throws Exception {
        Random rng = new Random(1);
        for (int bits = 1; bits <= 8; bits++) {
            int k = 1 << bits;
            float[] book = new float[k];
            for (int i = 0; i < k; i++) {
                book[i] = i * 0.25f - 3f;
            }
            int n = 37;
            int[] idx = new int[n];
            float[] want = new float[n];
            for (int i = 0; i < n; i++) {
                idx[i] = rng.nextInt(k);
                want[i] = book[idx[i]];
            }
            byte[] p = Payloads.payload(DENSE, BOOK, FLOAT32, 4, 4 * n,
                    Payloads.codebookPrefix(Payloads.floats(book), 4),
                    Payloads.fixedStream(idx, bits));
            assertArrayEquals("bits=" + bits, Payloads.floats(want), decode(p));
        }
    }

    @Test
    public void denseCodebookHuffmanManyBlocks() throws Exception {
        int n = 1000;
        int[] idx = new int[n];
        float[] book = {0f, 0.5f, -0.5f, 1f};
        float[] want = new float[n];
        Random rng = new Random(2);
        for (int i = 0; i < n; i++) {
            int r = rng.nextInt(8);
            idx[i] = r < 5 ? 0 : r < 7 ? 1 : r == 7 ? 2 : 3;
            want[i] = book[idx[i]];
        }
        int[] lengths = {1, 2, 3, 3};
        byte[] p = Payloads.payload(DENSE, BOOK, FLOAT32, 4, 4 * n,
                Payloads.codebookPrefix(Payloads.floats(book), 4),
                Payloads.huffmanStream(idx, 2, lengths, 64));
        assertArrayEquals(Payloads.floats(want), decode(p));
    }

    @Test
    public void oneSymbolHuffman() throws Exception {
        int[] idx = new int[10];
        int[] lengths = {0, 1, 0, 0}; // only symbol 1, code "0"
        Arrays.fill(idx, 1);
        byte[] p = Payloads.payload(DENSE, BOOK, INT8, 1, 10,
                Payloads.codebookPrefix(new byte[] {3, 4}, 1),
                Payloads.huffmanStream(idx, 2, lengths, 4));
        byte[] want = new byte[10];
        Arrays.fill(want, (byte) 4);
        assertArrayEquals(want, decode(p));
    }

    /** Sparse: elements 2, 3 and 40 differ from the fill; gaps of 2 bits need fillers. */
    @Test
    public void sparseRawWithFillers() throws Exception {
        int n = 50;
        float[] want = new float[n];
        Arrays.fill(want, 0.5f);
        want[2] = 7f;
        want[3] = -1f;
        want[40] = 9f;
        // Cursor -1 -> 2 (gap 2) -> 3 (gap 0) -> then 36 fill positions to reach 40:
        // fillers of gap 3 land on 7, 11, ..., 39; the last real gap is 0.
        int[] gaps = {2, 0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0};
        float[] vals = new float[gaps.length];
        Arrays.fill(vals, 0.5f);
        vals[0] = 7f;
        vals[1] = -1f;
        vals[gaps.length - 1] = 9f;
        byte[] p = Payloads.payload(SPARSE, RAW, FLOAT32, 4, 4 * n,
                Payloads.floats(0.5f), Payloads.fixedStream(gaps, 2),
                Payloads.fixedStream(Payloads.unsigned(Payloads.floats(vals)), 8));
        assertArrayEquals(Payloads.floats(want), decode(p));
    }

    @Test
    public void sparseCodebookHuffmanGaps() throws Exception {
        int n = 20;
        byte[] book = {0, 10, 20};
        int[] gaps = {0, 1, 2, 0, 3};
        int[] idx = {1, 2, 1, 2, 1};
        byte[] want = new byte[n];
        int cursor = -1;
        for (int j = 0; j < gaps.length; j++) {
            cursor += gaps[j] + 1;
            want[cursor] = book[idx[j]];
        }
        int[] gapLengths = {2, 2, 2, 2, 0, 0, 0, 0};
        byte[] p = Payloads.payload(SPARSE, BOOK, INT8, 1, n,
                Payloads.codebookPrefix(book, 1), new byte[] {0},
                Payloads.huffmanStream(gaps, 3, gapLengths, 2), Payloads.fixedStream(idx, 2));
        assertArrayEquals(want, decode(p));
    }

    @Test
    public void emptyTensor() throws Exception {
        byte[] p = Payloads.payload(DENSE, RAW, FLOAT32, 4, 0,
                Payloads.fixedStream(new int[0], 8));
        assertEquals(0, decode(p).length);
    }

    @Test
    public void int64Elements() throws Exception {
        byte[] book = new byte[16];
        book[0] = 1;
        book[15] = (byte) 0x80;
        byte[] p = Payloads.payload(DENSE, BOOK, 4, 8, 24,
                Payloads.codebookPrefix(book, 8), Payloads.fixedStream(new int[] {1, 0, 1}, 1));
        byte[] out = decode(p);
        assertArrayEquals(Arrays.copyOfRange(book, 8, 16), Arrays.copyOfRange(out, 0, 8));
        assertArrayEquals(Arrays.copyOfRange(book, 0, 8), Arrays.copyOfRange(out, 8, 16));
    }

    // ---- header errors, in the order the format lists them -------------------------------

    @Test
    public void truncatedHeader() {
        assertError(Arrays.copyOf(denseRawFloats(), 27),
                "tensor 'w', byte 0: truncated payload: 27 bytes, the header alone takes 28");
    }

    @Test
    public void badMagic() {
        byte[] p = denseRawFloats();
        p[3] = 'Q';
        assertError(p, "tensor 'w', byte 0: bad magic b'TFEQ', expected b'TFEP'");
    }

    @Test
    public void newerVersion() {
        byte[] p = denseRawFloats();
        p[4] = 4;
        assertError(p, "tensor 'w', byte 4: payload format version 4 is newer than this "
                + "reader's 3; upgrade tfedge");
        p[4] = 0;
        assertError(p, "tensor 'w', byte 4: unknown payload format version 0");
    }

    @Test
    public void version2ReadsVersion1Kinds() throws Exception {
        // Kinds 0 and 1 are the same in a version-2 payload.
        byte[] p = denseRawFloats();
        p[4] = 2;
        Payloads.fixCrc(p);
        assertArrayEquals(Payloads.floats(1f, -2f, 3.5f), decode(p));
    }

    @Test
    public void unknownLayoutKindAndSize() {
        byte[] p = denseRawFloats();
        p[5] = 2;
        assertError(p, "tensor 'w', byte 5: unknown layout 2 (0 dense, 1 sparse)");
        p = denseRawFloats();
        p[6] = 7;
        assertError(p, "tensor 'w', byte 6: unknown value kind 7 (0 raw, 1 codebook, "
                + "2 per-channel codebook, 3 byte planes)");
        p = denseRawFloats();
        p[6] = 4;
        assertError(p, "tensor 'w', byte 6: unknown value kind 4 (0 raw, 1 codebook, "
                + "2 per-channel codebook, 3 byte planes)");
        p = denseRawFloats();
        p[6] = 3;
        assertError(p, "tensor 'w', byte 6: value kind 3 (planes) needs payload format "
                + "version 3, this payload says " + p[4]);
        p = denseRawFloats();
        p[8] = 3;
        assertError(p, "tensor 'w', byte 8: element size 3 is not 1, 2, 4 or 8");
        p = denseRawFloats();
        p[10] = 1;
        assertError(p, "tensor 'w', byte 9: reserved bytes are not zero");
    }

    @Test
    public void decodedSizeChecks() {
        byte[] p = denseRawFloats();
        p[12] = 13;
        assertError(p, "tensor 'w', byte 12: decoded size 13 is not a multiple of the element "
                + "size 4");
        p = denseRawFloats();
        p[19] = 0x40; // a forged 2^62-byte tensor: refused before any allocation
        p[12] = 0;
        assertError(p, "tensor 'w', byte 12: decoded size 4611686018427387904 exceeds the "
                + "bound of 2147483647 bytes");
        assertError(denseRawFloats(), 8, "tensor 'w', byte 12: decoded size 12 exceeds the "
                + "bound of 8 bytes");
        assertError(denseRawFloats(), 16, "tensor 'w', byte 12: decoded size 12 disagrees with "
                + "the tensor's 16 bytes");
    }

    @Test
    public void bodySizeAndCrc() {
        byte[] p = denseRawFloats();
        assertError(Arrays.copyOf(p, p.length - 1),
                "tensor 'w', byte 20: body size 22 disagrees with the 21 bytes present");
        p[30] ^= 1;
        String m = "tensor 'w', byte 24: CRC mismatch: header says 0x";
        try {
            decode(p);
            fail();
        } catch (TfedgeFormatException e) {
            assertEquals(m, e.getMessage().substring(0, m.length()));
            assertEquals(24, e.getOffset());
            assertEquals("w", e.getTensor());
        }
    }

    // ---- body errors ---------------------------------------------------------------------

    @Test
    public void codebookErrors() {
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 1, new byte[] {1}),
                "tensor 'w', byte 28: truncated codebook size");
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 1, new byte[] {0, 0}),
                "tensor 'w', byte 28: codebook size 0 is not in [1, 256]");
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 1, new byte[] {3, 0, 1}),
                "tensor 'w', byte 30: truncated codebook: 3 bytes needed, 1 present");
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 3,
                Payloads.codebookPrefix(new byte[] {1, 2, 3}, 1),
                Payloads.fixedStream(new int[] {0, 3, 1}, 2)),
                "tensor 'w', byte 33: value 1 is codebook index 3, but the codebook has 3 "
                        + "entries");
    }

    @Test
    public void streamErrors() {
        byte[] book = Payloads.codebookPrefix(new byte[] {1, 2}, 1);
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 2, book, new byte[] {0, 1, 2}),
                "tensor 'w', byte 32: truncated stream header: 10 bytes needed, 3 present");
        byte[] s = Payloads.fixedStream(new int[] {0, 1}, 1);
        s[0] = 3;
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 2, book, s),
                "tensor 'w', byte 32: unknown stream coding 3 (expected 0, 1 or 2)");
        s[0] = 2; // rANS, in a version-1 payload
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 2, book, s),
                "tensor 'w', byte 32: a rANS stream needs payload format version 3, this "
                + "payload says 1");
        s = Payloads.fixedStream(new int[] {0, 1}, 1);
        s[1] = 9;
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 2, book, s),
                "tensor 'w', byte 33: stream symbol width 9 is not in [1, 8]");
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 2, book,
                Payloads.fixedStream(new int[] {0, 1, 1}, 1)),
                "tensor 'w', byte 34: stream holds 3 symbols, more than the 2 allowed");
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 2, book,
                Payloads.fixedStream(new int[] {0}, 1)),
                "tensor 'w', byte 32: value stream holds 1 symbols, expected 2");
        s = Payloads.fixedStream(new int[] {0, 1}, 1);
        s[6] = 2;
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 2, book, s),
                "tensor 'w', byte 38: fixed-width stream of 2 x 1-bit symbols has data size 2,"
                        + " expected 1");
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 2, book,
                Payloads.fixedStream(new int[] {0, 1}, 1), new byte[] {0, 0}),
                "tensor 'w', byte 43: 2 trailing bytes after the value stream");
        assertError(Payloads.payload(DENSE, RAW, INT8, 1, 2,
                Payloads.fixedStream(new int[] {0, 1}, 4)),
                "tensor 'w', byte 29: a raw value stream must have 8-bit symbols, this one has"
                        + " 4");
    }

    @Test
    public void huffmanTableErrors() {
        byte[] book = Payloads.codebookPrefix(new byte[] {1, 2, 3, 4}, 1);
        int[] idx = {0, 1, 2, 3};
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 4, book,
                Payloads.huffmanStream(idx, 2, new int[] {1, 2, 3, 4}, 8)),
                "tensor 'w', byte 48: the code lengths are incomplete: Kraft sum 30720/32768");
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 4, book,
                Payloads.huffmanStream(idx, 2, new int[] {1, 1, 2, 2}, 8)),
                "tensor 'w', byte 48: the code lengths are over-subscribed (not a prefix code):"
                        + " Kraft sum 49152/32768");
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 2, book,
                Payloads.huffmanStream(new int[] {2, 2}, 2, new int[] {0, 0, 2, 0}, 8)),
                "tensor 'w', byte 48: the only code has length 2, expected 1");
        byte[] s = Payloads.huffmanStream(idx, 2, new int[] {2, 2, 2, 2}, 8);
        s[10] = 0;
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 4, book, s),
                "tensor 'w', byte 44: Huffman block size is 0");
    }

    @Test
    public void huffmanDataErrors() {
        byte[] book = Payloads.codebookPrefix(new byte[] {1, 2, 3, 4}, 1);
        int[] idx = new int[8];
        Arrays.fill(idx, 3); // codes 11 with lengths {2,2,2,2}
        int[] lengths = {2, 2, 2, 2};
        // Blocks of 2 symbols start at bits 0, 4, 8 and 12 of 16.
        byte[] s = Payloads.huffmanStream(idx, 2, lengths, 2);
        int offsets = 10 + 4 + 2;
        s[offsets + 8] = 16; // block 3 starts at the end of the data
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 8, book, s),
                "tensor 'w', byte 62: Huffman block 3 of 4 reads past the end of the 2-byte "
                        + "data or holds a bit pattern that is no code");
        s = Payloads.huffmanStream(idx, 2, lengths, 2);
        s[offsets + 4] = 3; // block 2 before block 1
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 8, book, s),
                "tensor 'w', byte 50: Huffman block offsets decrease");
        s = Payloads.huffmanStream(idx, 2, lengths, 2);
        s[offsets + 8] = 40;
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 8, book, s),
                "tensor 'w', byte 58: Huffman block offset 40 is past the data (16 bits)");
        // One-symbol code "0": a 1 bit is no code.
        s = Payloads.huffmanStream(new int[] {1, 1, 1}, 2, new int[] {0, 1, 0, 0}, 8);
        s[s.length - 1] = (byte) 0x20;
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 3, book, s),
                "tensor 'w', byte 50: Huffman block 0 of 1 reads past the end of the 1-byte "
                        + "data or holds a bit pattern that is no code");
        s = Payloads.huffmanStream(idx, 2, lengths, 8);
        s[6] = 0; // data size 0 with 8 symbols
        assertError(Payloads.payload(DENSE, BOOK, INT8, 1, 8, book, s),
                "tensor 'w', byte 36: Huffman stream claims 8 symbols in 0 bytes of data "
                        + "(every code takes at least one bit)");
    }

    @Test
    public void sparseCursorPastTheEnd() {
        assertError(Payloads.payload(SPARSE, RAW, INT8, 1, 4, new byte[] {0},
                Payloads.fixedStream(new int[] {1, 3}, 2),
                Payloads.fixedStream(new int[] {5, 6}, 8)),
                "tensor 'w', byte 29: sparse index entry 1 lands on element 5, past the 4 "
                        + "elements");
        assertError(Payloads.payload(SPARSE, RAW, INT8, 1, 4, new byte[] {}),
                "tensor 'w', byte 28: truncated fill value: 1 bytes needed, 0 present");
    }

    // ---- per-channel codebooks (value kind 2, format version 2) ----------------------------

    /** Element i of a per-channel payload: channel (i / run) % channels's entry idx[i]. */
    static byte[] channelReference(byte[] entries, int es, int k, int channels, int run,
            int[] idx) {
        byte[] out = new byte[idx.length * es];
        for (int i = 0; i < idx.length; i++) {
            int c = (i / run) % channels;
            System.arraycopy(entries, (c * k + idx[i]) * es, out, i * es, es);
        }
        return out;
    }

    /** A ternary kernel's codebooks: channel c holds {0, -a_c, +b_c}. */
    static float[] ternaryBooks(int channels, Random rng) {
        float[] book = new float[3 * channels];
        for (int c = 0; c < channels; c++) {
            book[3 * c] = 0f;
            book[3 * c + 1] = -(0.5f + 1.5f * rng.nextFloat());
            book[3 * c + 2] = 0.5f + 1.5f * rng.nextFloat();
        }
        return book;
    }

    @Test
    public void channelCodebookDenseHandBuilt() throws Exception {
        // 2 channels of runs of 2 over 8 elements: channels 0 0 1 1 0 0 1 1.
        byte[] p = Payloads.payload(DENSE, CHANNEL, INT8, 1, 8,
                Payloads.channelCodebookPrefix(new byte[] {10, 11, 20, 21}, 1, 2, 2),
                Payloads.fixedStream(new int[] {0, 1, 0, 1, 1, 1, 0, 0}, 1));
        assertArrayEquals(new byte[] {10, 11, 20, 21, 11, 11, 20, 20}, decode(p));
        assertEquals(0, p[30]); // G = 0: no entry is the same in both channels
        Payload h = Payload.parse(p, 0, p.length, Payload.DEFAULT_BOUND, 8, "w");
        assertEquals(2, h.version);
        assertEquals(Payload.KIND_CHANNEL_CODEBOOK, h.valueKind);
    }

    /** G = 1: index 0 is the shared entry 7, index 1 each channel's own entry. */
    @Test
    public void channelCodebookOneSharedEntryHandBuilt() throws Exception {
        byte[] prefix = Payloads.channelCodebookPrefix(2, 1, 2, 2, new byte[] {7, 11, 21});
        byte[] p = Payloads.payload(DENSE, CHANNEL, INT8, 1, 8, prefix,
                Payloads.fixedStream(new int[] {0, 1, 0, 1, 1, 1, 0, 0}, 1));
        assertArrayEquals(new byte[] {7, 11, 7, 21, 11, 11, 7, 7}, decode(p));
        // The same table as C x K entries: the writer finds G = 1 itself.
        assertArrayEquals(prefix,
                Payloads.channelCodebookPrefix(new byte[] {7, 11, 7, 21}, 1, 2, 2));
        // Sparse, fill 7 (shared): stored entries at 1 (channel 0) and 3 (channel 1).
        p = Payloads.payload(SPARSE, CHANNEL, INT8, 1, 8, prefix, new byte[] {7},
                Payloads.fixedStream(new int[] {1, 1}, 2),
                Payloads.fixedStream(new int[] {1, 1}, 1));
        assertArrayEquals(new byte[] {7, 11, 7, 21, 7, 7, 7, 7}, decode(p));
    }

    /** G = K: every entry shared, stored once however many channels there are. */
    @Test
    public void channelCodebookAllEntriesSharedHandBuilt() throws Exception {
        byte[] prefix = Payloads.channelCodebookPrefix(2, 2, 3, 1, new byte[] {10, 11});
        assertArrayEquals(prefix, Payloads.channelCodebookPrefix(
                new byte[] {10, 11, 10, 11, 10, 11}, 1, 3, 1));
        byte[] p = Payloads.payload(DENSE, CHANNEL, INT8, 1, 6, prefix,
                Payloads.fixedStream(new int[] {0, 1, 1, 0, 1, 0}, 1));
        assertArrayEquals(new byte[] {10, 11, 11, 10, 11, 10}, decode(p));
        p = Payloads.payload(SPARSE, CHANNEL, INT8, 1, 6, prefix, new byte[] {10},
                Payloads.fixedStream(new int[] {1, 0, 1}, 1),
                Payloads.fixedStream(new int[] {1, 1, 1}, 1));
        assertArrayEquals(new byte[] {10, 11, 11, 10, 11, 10}, decode(p));
        // One channel: all K entries are shared (as the numpy writer stores it).
        assertArrayEquals(Payloads.channelCodebookPrefix(2, 2, 1, 6, new byte[] {10, 11}),
                Payloads.channelCodebookPrefix(new byte[] {10, 11}, 1, 1, 6));
    }

    /** Several (C, R) tilings, including R = 1 and C = 1, fixed and Huffman indices. */
    @Test
    public void channelCodebookDenseTilings() throws Exception {
        int[][] tilings = {{1, 50, 1}, {8, 36, 1}, {16, 1, 9}, {5, 3, 4}, {3, 7, 2}, {1, 1, 5}};
        Random rng = new Random(3);
        for (int[] t : tilings) {
            int channels = t[0];
            int run = t[1];
            int n = channels * run * t[2];
            float[] book = ternaryBooks(channels, rng);
            byte[] entries = Payloads.floats(book);
            int[] idx = new int[n];
            for (int i = 0; i < n; i++) {
                int r = rng.nextInt(4);
                idx[i] = r < 2 ? 0 : r - 1; // half zeros
            }
            byte[] want = channelReference(entries, 4, 3, channels, run, idx);
            int most = Payloads.leadingShared(entries, 4, channels);
            assertEquals(channels == 1 ? 3 : 1, most);
            for (int shared = 0; shared <= most; shared++) {
                String what = "C=" + channels + " R=" + run + " N=" + n + " G=" + shared;
                byte[] prefix = Payloads.channelCodebookPrefix(entries, 4, channels, run,
                        shared);
                assertArrayEquals(what + " fixed", want, decode(Payloads.payload(DENSE,
                        CHANNEL, FLOAT32, 4, 4L * n, prefix, Payloads.fixedStream(idx, 2))));
                assertArrayEquals(what + " huffman", want, decode(Payloads.payload(DENSE,
                        CHANNEL, FLOAT32, 4, 4L * n, prefix,
                        Payloads.huffmanStream(idx, 2, new int[] {1, 2, 2, 0}, 7))));
            }
        }
    }

    @Test
    public void channelCodebookOtherElementSizes() throws Exception {
        Random rng = new Random(4);
        int[][] cases = {{1, 0}, {2, 2}, {8, 4}, {4, 3}}; // element size, G
        for (int[] t : cases) {
            int es = t[0];
            int channels = 3;
            int run = 2;
            int k = 4;
            int n = channels * run * 3;
            byte[] entries = new byte[channels * k * es];
            rng.nextBytes(entries);
            for (int c = 1; c < channels; c++) {
                System.arraycopy(entries, 0, entries, c * k * es, t[1] * es);
            }
            assertEquals(t[1], Payloads.leadingShared(entries, es, channels));
            int[] idx = new int[n];
            for (int i = 0; i < n; i++) {
                idx[i] = rng.nextInt(k);
            }
            byte[] p = Payloads.payload(DENSE, CHANNEL, es == 8 ? 4 : es == 2 ? 1 : INT8, es,
                    (long) n * es, Payloads.channelCodebookPrefix(entries, es, channels, run),
                    Payloads.fixedStream(idx, 2));
            assertArrayEquals("es=" + es + " G=" + t[1],
                    channelReference(entries, es, k, channels, run, idx), decode(p));
        }
    }

    /** Sparse: a stored entry's channel is that of the position the cursor gives it. */
    @Test
    public void channelCodebookSparseHandBuilt() throws Exception {
        // N = 8, C = 2, R = 2: channels 0 0 1 1 0 0 1 1; index 0 is 0 in both channels.
        // Stored entries at 1 (channel 0), 2 (channel 1) and 7 (channel 1), all index 1.
        byte[] p = Payloads.payload(SPARSE, CHANNEL, INT8, 1, 8,
                Payloads.channelCodebookPrefix(new byte[] {0, 5, 0, 7}, 1, 2, 2),
                new byte[] {0}, Payloads.fixedStream(new int[] {1, 0, 4}, 3),
                Payloads.fixedStream(new int[] {1, 1, 1}, 1));
        assertArrayEquals(new byte[] {0, 5, 7, 0, 0, 0, 0, 7}, decode(p));
    }

    /**
     * Sparse with 2-bit gaps over a mostly-zero ternary kernel: long zero runs need filler
     * entries (index 0, the fill, in whichever channel they land), fixed and Huffman.
     */
    @Test
    public void channelCodebookSparseWithFillers() throws Exception {
        int[][] tilings = {{4, 25, 2}, {7, 1, 30}, {1, 60, 1}};
        Random rng = new Random(5);
        for (int[] t : tilings) {
            int channels = t[0];
            int run = t[1];
            int n = channels * run * t[2];
            byte[] entries = Payloads.floats(ternaryBooks(channels, rng));
            int[] idx = new int[n];
            for (int i = 0; i < n; i++) {
                idx[i] = rng.nextInt(10) == 0 ? 1 + rng.nextInt(2) : 0;
            }
            // The relative index: gaps of at most 3, a filler (index 0) when longer.
            List<Integer> gaps = new ArrayList<Integer>();
            List<Integer> vals = new ArrayList<Integer>();
            int last = -1;
            int fillers = 0;
            for (int i = 0; i < n; i++) {
                if (idx[i] == 0) {
                    continue;
                }
                while (i - last - 1 > 3) {
                    gaps.add(3);
                    vals.add(0);
                    last += 4;
                    fillers++;
                }
                gaps.add(i - last - 1);
                vals.add(idx[i]);
                last = i;
            }
            assertTrue("the case has fillers", fillers > 0);
            int[] g = new int[gaps.size()];
            int[] v = new int[vals.size()];
            for (int j = 0; j < g.length; j++) {
                g[j] = gaps.get(j);
                v[j] = vals.get(j);
            }
            byte[] want = channelReference(entries, 4, 3, channels, run, idx);
            byte[] fill = Payloads.floats(0f);
            for (int shared = 0; shared <= 1; shared++) {
                byte[] prefix = Payloads.channelCodebookPrefix(entries, 4, channels, run,
                        shared);
                String what = "C=" + channels + " R=" + run + " G=" + shared;
                assertArrayEquals(what + " fixed", want, decode(Payloads.payload(SPARSE,
                        CHANNEL, FLOAT32, 4, 4L * n, prefix, fill, Payloads.fixedStream(g, 2),
                        Payloads.fixedStream(v, 2))));
                assertArrayEquals(what + " huffman", want, decode(Payloads.payload(SPARSE,
                        CHANNEL, FLOAT32, 4, 4L * n, prefix, fill,
                        Payloads.huffmanStream(g, 2, new int[] {2, 2, 2, 2}, 5),
                        Payloads.huffmanStream(v, 2, new int[] {2, 2, 1, 0}, 3))));
            }
        }
    }

    @Test
    public void channelCodebookEmptyTensor() throws Exception {
        // N = 0: any C, R >= 1 tile it; the entries must still be present.
        byte[] p = Payloads.payload(DENSE, CHANNEL, INT8, 1, 0,
                Payloads.channelCodebookPrefix(new byte[] {1, 2, 3}, 1, 3, 0xFFFFFFFFL),
                Payloads.fixedStream(new int[0], 1));
        assertEquals(0, decode(p).length);
        p = Payloads.payload(DENSE, CHANNEL, 4, 8, 0,
                Payloads.channelCodebookPrefix(2, 2, 0xFFFFFFFFL, 0xFFFFFFFFL, new byte[16]),
                Payloads.fixedStream(new int[0], 1));
        assertEquals(0, decode(p).length);
    }

    @Test
    public void channelKindNeedsVersion2() {
        byte[] p = Payloads.payload(1, DENSE, CHANNEL, INT8, 1, 8,
                Payloads.channelCodebookPrefix(new byte[] {10, 11, 20, 21}, 1, 2, 2),
                Payloads.fixedStream(new int[] {0, 1, 0, 1, 1, 1, 0, 0}, 1));
        assertError(p, "tensor 'w', byte 6: value kind 2 (channel_codebook) needs payload "
                + "format version 2, this payload says 1");
    }

    /**
     * The numpy reader's checks, messages and offsets: K at byte 28, G at 30, C at 32, R at
     * 36, the entries from 40.
     */
    @Test
    public void channelCodebookErrors() {
        byte[] four = Payloads.fixedStream(new int[] {0, 0, 0, 0}, 1);
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                new byte[] {1, 0, 0, 0, 2, 0, 0, 0, 1}),
                "tensor 'w', byte 30: truncated shared entry count, channel count and channel "
                        + "run");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(0, 0, 1, 1, new byte[] {1}), four),
                "tensor 'w', byte 28: codebook size 0 is not in [1, 256]");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(257, 0, 1, 1, new byte[] {1}), four),
                "tensor 'w', byte 28: codebook size 257 is not in [1, 256]");
        // G <= K, checked before C and R.
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(2, 3, 2, 2, new byte[] {1, 2, 3}), four),
                "tensor 'w', byte 30: 3 shared entries, more than the K=2 entries");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(1, 0xFFFF, 0, 0, new byte[0]), four),
                "tensor 'w', byte 30: 65535 shared entries, more than the K=1 entries");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(1, 0, 0, 1, new byte[0]), four),
                "tensor 'w', byte 32: channel count 0 and channel run 1 must both be >= 1");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(1, 0, 2, 0, new byte[] {1, 2}), four),
                "tensor 'w', byte 32: channel count 2 and channel run 0 must both be >= 1");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(1, 1, 0, 1, new byte[] {1}), four),
                "tensor 'w', byte 32: channel count 0 and channel run 1 must both be >= 1");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(1, 0, 3, 1, new byte[] {1, 2, 3}), four),
                "tensor 'w', byte 32: 3 channels of 1 elements do not tile the tensor's 4 "
                        + "elements");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(1, 0, 2, 3, new byte[] {1, 2}), four),
                "tensor 'w', byte 32: 2 channels of 3 elements do not tile the tensor's 4 "
                        + "elements");
        // Tiling is checked whatever G is (G = K: no own entries).
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(1, 1, 3, 1, new byte[] {1}), four),
                "tensor 'w', byte 32: 3 channels of 1 elements do not tile the tensor's 4 "
                        + "elements");
        // Unsigned 32-bit counts: 2^31 and 2^32 - 1 are not negative ints.
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(1, 0, 0x80000000L, 1, new byte[0]), four),
                "tensor 'w', byte 32: 2147483648 channels of 1 elements do not tile the "
                        + "tensor's 4 elements");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(1, 0, 2, 0x80000002L, new byte[0]), four),
                "tensor 'w', byte 32: 2 channels of 2147483650 elements do not tile the "
                        + "tensor's 4 elements");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(1, 0, 0xFFFFFFFFL, 0xFFFFFFFFL, new byte[0])),
                "tensor 'w', byte 32: 4294967295 channels of 4294967295 elements do not tile "
                        + "the tensor's 4 elements");
        // C x R = 2^32 would be 0 in 32-bit arithmetic.
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 1 << 20,
                Payloads.channelCodebookPrefix(1, 0, 65536, 65536, new byte[0])),
                "tensor 'w', byte 32: 65536 channels of 65536 elements do not tile the "
                        + "tensor's 1048576 elements");
        // All (G + C x (K - G)) x es bytes, counted in 64 bits (2^32 and ~2^43 here),
        // before any copy.
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 1 << 24,
                Payloads.channelCodebookPrefix(256, 0, 1 << 24, 1, new byte[] {1, 2})),
                "tensor 'w', byte 40: truncated codebook: 4294967296 bytes needed, 2 present");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 1 << 24,
                Payloads.channelCodebookPrefix(256, 1, 1 << 24, 1, new byte[] {1, 2})),
                "tensor 'w', byte 40: truncated codebook: 4278190081 bytes needed, 2 present");
        assertError(Payloads.payload(DENSE, CHANNEL, 4, 8, 0,
                Payloads.channelCodebookPrefix(256, 0, 0xFFFFFFFFL, 0xFFFFFFFFL, new byte[0])),
                "tensor 'w', byte 40: truncated codebook: 8796093020160 bytes needed, 0 "
                        + "present");
        // G = K: only the K shared entries, however many channels.
        assertError(Payloads.payload(DENSE, CHANNEL, 4, 8, 0,
                Payloads.channelCodebookPrefix(256, 256, 0xFFFFFFFFL, 0xFFFFFFFFL,
                        new byte[0])),
                "tensor 'w', byte 40: truncated codebook: 2048 bytes needed, 0 present");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(2, 0, 2, 2, new byte[] {1, 2, 3})),
                "tensor 'w', byte 40: truncated codebook: 4 bytes needed, 3 present");
        // One shared entry and one own entry per channel: 3 entries.
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(2, 1, 2, 2, new byte[] {1, 2})),
                "tensor 'w', byte 40: truncated codebook: 3 bytes needed, 2 present");
        // Indices < K (per channel), dense and sparse, whatever G is.
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(2, 0, 2, 2, new byte[] {1, 2, 3, 4}),
                Payloads.fixedStream(new int[] {0, 1, 2, 0}, 2)),
                "tensor 'w', byte 44: value 2 is codebook index 2, but the codebook has 2 "
                        + "entries per channel");
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(2, 1, 2, 2, new byte[] {1, 2, 3}),
                Payloads.fixedStream(new int[] {0, 1, 2, 0}, 2)),
                "tensor 'w', byte 43: value 2 is codebook index 2, but the codebook has 2 "
                        + "entries per channel");
        assertError(Payloads.payload(SPARSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(2, 0, 2, 2, new byte[] {0, 2, 0, 4}),
                new byte[] {0}, Payloads.fixedStream(new int[] {1, 1}, 2),
                Payloads.fixedStream(new int[] {1, 3}, 2)),
                "tensor 'w', byte 56: value 1 is codebook index 3, but the codebook has 2 "
                        + "entries per channel");
        // One channel (every entry shared, G = K): still "per channel", as numpy says it
        // for every per-channel payload.
        assertError(Payloads.payload(DENSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(new byte[] {1, 2}, 1, 1, 4),
                Payloads.fixedStream(new int[] {0, 1, 3, 0}, 2)),
                "tensor 'w', byte 42: value 2 is codebook index 3, but the codebook has 2 "
                        + "entries per channel");
        assertError(Payloads.payload(SPARSE, CHANNEL, INT8, 1, 4,
                Payloads.channelCodebookPrefix(2, 0, 2, 2, new byte[] {0, 2, 0, 4}),
                new byte[] {0}, Payloads.fixedStream(new int[] {1, 3}, 2),
                Payloads.fixedStream(new int[] {1, 1}, 2)),
                "tensor 'w', byte 45: sparse index entry 1 lands on element 5, past the 4 "
                        + "elements");
    }

    /** Random corruption (with the CRC fixed) and every truncation: only format errors. */
    @Test
    public void mutationsGiveOnlyFormatErrors() {
        Random rng = new Random(7);
        byte[][] seeds = new byte[6][];
        seeds[0] = denseRawFloats();
        int[] idx = new int[300];
        for (int i = 0; i < idx.length; i++) {
            idx[i] = rng.nextInt(4);
        }
        seeds[1] = Payloads.payload(DENSE, BOOK, FLOAT32, 4, 1200,
                Payloads.codebookPrefix(Payloads.floats(0f, 1f, 2f, 3f), 4),
                Payloads.huffmanStream(idx, 2, new int[] {1, 2, 3, 3}, 50));
        seeds[2] = Payloads.payload(SPARSE, BOOK, INT8, 1, 20,
                Payloads.codebookPrefix(new byte[] {0, 10, 20}, 1), new byte[] {0},
                Payloads.huffmanStream(new int[] {0, 1, 2, 0, 3}, 3,
                        new int[] {2, 2, 2, 2, 0, 0, 0, 0}, 2),
                Payloads.fixedStream(new int[] {1, 2, 1, 2, 1}, 2));
        seeds[3] = Payloads.payload(DENSE, CHANNEL, INT8, 1, 8,
                Payloads.channelCodebookPrefix(new byte[] {10, 11, 20, 21}, 1, 2, 2),
                Payloads.huffmanStream(new int[] {0, 1, 0, 1, 1, 1, 0, 0}, 1,
                        new int[] {1, 1}, 3));
        seeds[4] = Payloads.payload(SPARSE, CHANNEL, INT8, 1, 8,
                Payloads.channelCodebookPrefix(new byte[] {0, 5, 0, 7}, 1, 2, 2),
                new byte[] {0}, Payloads.fixedStream(new int[] {1, 0, 4}, 3),
                Payloads.fixedStream(new int[] {1, 1, 1}, 1));
        seeds[5] = Payloads.payload(DENSE, CHANNEL, INT8, 1, 8,
                Payloads.channelCodebookPrefix(2, 1, 2, 2, new byte[] {7, 11, 21}),
                Payloads.huffmanStream(new int[] {0, 1, 0, 1, 1, 1, 0, 0}, 1,
                        new int[] {1, 1}, 3));
        int errors = 0;
        for (byte[] seed : seeds) {
            for (int len = 0; len < seed.length; len++) {
                errors += tryDecode(Arrays.copyOf(seed, len)) ? 0 : 1;
            }
            for (int t = 0; t < 3000; t++) {
                byte[] p = seed.clone();
                int flips = 1 + rng.nextInt(3);
                for (int f = 0; f < flips; f++) {
                    p[rng.nextInt(p.length)] = (byte) rng.nextInt(256);
                }
                if (p.length >= 28) {
                    Payloads.fixCrc(p);
                }
                errors += tryDecode(p) ? 0 : 1;
            }
        }
        // Most mutations must be caught; none may escape as a runtime exception.
        assertEquals(true, errors > 1000);
    }

    private static boolean tryDecode(byte[] p) {
        try {
            decode(p);
            return true;
        } catch (TfedgeFormatException e) {
            return false;
        }
    }
}
