package org.tfedge.unpacker;

import java.util.Arrays;
import java.util.zip.CRC32;

/**
 * Reads one tfedge payload (docs/FORMAT.md section 2): the header checks, in the order the
 * format lists them, then the body (codebook, plain or per-channel, fill value, gap and
 * value streams) and the decode into the tensor's bytes. It reads format versions 1 and 2
 * (version 2 adds value kind 2, the per-channel codebook).
 *
 * <p>Checks, their order and their messages follow the numpy reader
 * ({@code tfedge.codecs.decode_payload}), so both report the same error for the same file.
 * Offsets in errors are byte offsets into the payload. Nothing larger than the bounded
 * decoded size is allocated: every count is checked against the decoded size or against
 * the bytes present before an array is made for it.
 */
public final class Payload {
    /** The newest payload format version this reader accepts. */
    public static final int FORMAT_VERSION = 3;
    /** Header bytes before the body. */
    public static final int HEADER_SIZE = 28;
    /** The bound on the decoded size when nothing smaller is known. */
    public static final long DEFAULT_BOUND = Integer.MAX_VALUE;
    /**
     * The resource bound (docs/FORMAT.md, "Resource bound"): a payload of {@code c} bytes
     * decodes to at most {@code max(EXPANSION_RATIO * c, EXPANSION_FLOOR)} bytes unless the
     * caller trusts the file; Huffman blocks hold at most {@code MAX_BLOCK_SIZE} symbols.
     */
    public static final long EXPANSION_RATIO = 1024;
    /** See {@link #EXPANSION_RATIO}. */
    public static final long EXPANSION_FLOOR = 1L << 24;
    /** See {@link #EXPANSION_RATIO}. */
    public static final long MAX_BLOCK_SIZE = 1L << 16;

    /** The most bytes a payload of {@code coded} bytes may decode to (untrusted). */
    public static long decodedBound(long coded) {
        return Math.max(EXPANSION_RATIO * coded, EXPANSION_FLOOR);
    }

    public static final int LAYOUT_DENSE = 0;
    public static final int LAYOUT_SPARSE = 1;
    public static final int KIND_RAW = 0;
    public static final int KIND_CODEBOOK = 1;
    /** Per-channel codebook indices (format version 2 and newer). */
    public static final int KIND_CHANNEL_CODEBOOK = 2;
    /** Byte planes of the rotated element bits (format version 3 and newer). */
    public static final int KIND_PLANES = 3;
    static final int MAX_CODEBOOK = 256;
    /** Format version 3: a codebook (kind 1) of elements wider than a byte, up to this. */
    static final int MAX_LARGE_CODEBOOK = 65535;
    static final int CODING_FIXED = 0;
    static final int CODING_HUFFMAN = 1;
    static final int MAX_CODE_LENGTH = 15;
    static final int STREAM_HEADER = 10;

    private static final byte[] MAGIC = {'T', 'F', 'E', 'P'};

    public final int version;
    public final int layout;
    public final int valueKind;
    public final int elementType;
    public final int elementSize;
    public final long decodedSize;
    public final long bodySize;

    private final byte[] buf;
    private final int start;
    private final String tensor;

    private Payload(byte[] buf, int start, String tensor, int version, int layout, int valueKind,
            int elementType, int elementSize, long decodedSize, long bodySize) {
        this.buf = buf;
        this.start = start;
        this.tensor = tensor;
        this.version = version;
        this.layout = layout;
        this.valueKind = valueKind;
        this.elementType = elementType;
        this.elementSize = elementSize;
        this.decodedSize = decodedSize;
        this.bodySize = bodySize;
    }

    /** The number of decoded elements. */
    public long elementCount() {
        return decodedSize / elementSize;
    }

    /**
     * Checks the header of the payload held in {@code buf[off, off + len)}, then its CRC.
     *
     * @param maxDecoded the largest decoded size accepted
     * @param expectedSize the tensor's byte size when known (the decoded size must equal
     *     it), or -1
     * @param tensor the tensor's name for error messages, or null
     */
    public static Payload parse(byte[] buf, int off, int len, long maxDecoded,
            long expectedSize, String tensor) throws TfedgeFormatException {
        if (len < HEADER_SIZE) {
            throw err("truncated payload: " + len + " bytes, the header alone takes "
                    + HEADER_SIZE, tensor, 0);
        }
        for (int i = 0; i < 4; i++) {
            if (buf[off + i] != MAGIC[i]) {
                throw err("bad magic " + pyBytes(buf, off, 4) + ", expected b'TFEP'", tensor, 0);
            }
        }
        int version = buf[off + 4] & 0xff;
        if (version > FORMAT_VERSION) {
            throw err("payload format version " + version + " is newer than this reader's "
                    + FORMAT_VERSION + "; upgrade tfedge", tensor, 4);
        }
        if (version < 1) {
            throw err("unknown payload format version " + version, tensor, 4);
        }
        int layout = buf[off + 5] & 0xff;
        if (layout != LAYOUT_DENSE && layout != LAYOUT_SPARSE) {
            throw err("unknown layout " + layout + " (0 dense, 1 sparse)", tensor, 5);
        }
        int kind = buf[off + 6] & 0xff;
        if (kind != KIND_RAW && kind != KIND_CODEBOOK && kind != KIND_CHANNEL_CODEBOOK
                && kind != KIND_PLANES) {
            throw err("unknown value kind " + kind
                    + " (0 raw, 1 codebook, 2 per-channel codebook, 3 byte planes)", tensor, 6);
        }
        if (version < kindVersion(kind)) {
            throw err("value kind " + kind + " (" + kindName(kind) + ") needs payload format "
                    + "version " + kindVersion(kind) + ", this payload says " + version, tensor,
                    6);
        }
        int elementType = buf[off + 7] & 0xff;
        int es = buf[off + 8] & 0xff;
        if (es != 1 && es != 2 && es != 4 && es != 8) {
            throw err("element size " + es + " is not 1, 2, 4 or 8", tensor, 8);
        }
        if (buf[off + 9] != 0 || buf[off + 10] != 0 || buf[off + 11] != 0) {
            throw err("reserved bytes are not zero", tensor, 9);
        }
        long decoded = le64(buf, off + 12);
        String decodedText = Long.toUnsignedString(decoded);
        if (Long.remainderUnsigned(decoded, es) != 0) {
            throw err("decoded size " + decodedText + " is not a multiple of the element size "
                    + es, tensor, 12);
        }
        long bound = expectedSize < 0 ? maxDecoded : Math.min(maxDecoded, expectedSize);
        if (Long.compareUnsigned(decoded, bound) > 0) {
            throw err("decoded size " + decodedText + " exceeds the bound of " + bound
                    + " bytes", tensor, 12);
        }
        if (expectedSize >= 0 && decoded != expectedSize) {
            throw err("decoded size " + decoded + " disagrees with the tensor's "
                    + expectedSize + " bytes", tensor, 12);
        }
        long body = le32(buf, off + 20);
        if (body != len - HEADER_SIZE) {
            throw err("body size " + body + " disagrees with the " + (len - HEADER_SIZE)
                    + " bytes present", tensor, 20);
        }
        CRC32 crc = new CRC32();
        crc.update(buf, off, 24);
        crc.update(buf, off + HEADER_SIZE, len - HEADER_SIZE);
        long stored = le32(buf, off + 24);
        if (crc.getValue() != stored) {
            throw err(String.format("CRC mismatch: header says 0x%08x, data gives 0x%08x",
                    stored, crc.getValue()), tensor, 24);
        }
        return new Payload(buf, off, tensor, version, layout, kind, elementType, es, decoded,
                body);
    }

    /** Parses and decodes a whole payload into a new array of the decoded size. */
    public static byte[] decode(byte[] buf, int off, int len, long maxDecoded,
            long expectedSize, String tensor) throws TfedgeFormatException {
        return parse(buf, off, len, maxDecoded, expectedSize, tensor).decode();
    }

    /**
     * Decodes the body into a new array of {@code decodedSize} bytes. Like the numpy reader,
     * it allocates the output only once every check has passed; before that, only symbol
     * arrays whose size the bytes present bound (at most 8 symbols per byte).
     */
    public byte[] decode() throws TfedgeFormatException {
        if (decodedSize > Integer.MAX_VALUE) {
            throw new TfedgeFormatException("decoded size " + decodedSize + " is over the "
                    + Integer.MAX_VALUE + " bytes a Java array holds", tensor, 12);
        }
        final int es = elementSize;
        final int n = (int) (decodedSize / es);
        final int size = HEADER_SIZE + (int) bodySize; // payload-relative end
        int pos = HEADER_SIZE;
        // The codebook entries as stored, read in place: `shared` entries (indices
        // 0..shared-1, the same in every channel), then each channel's k - shared own
        // entries. Element i is in channel (i / run) % channels; its index j means entry j
        // when j < shared, else entry (channel * own + j), own = k - shared. The plain
        // codebook is one channel whose k entries are all shared.
        byte[] book = null;
        int bookAt = 0; // offset of the first entry in `buf`
        int k = 0;
        int shared = 0;
        int own = 0;
        int channels = 1;
        int run = Math.max(n, 1);
        int rotation = 0;
        if (valueKind == KIND_PLANES) {
            if (size - pos < 1) {
                throw err("truncated plane rotation", tensor, pos);
            }
            rotation = buf[start + pos] & 0xff;
            if (rotation >= 8 * es) {
                throw err("plane rotation " + rotation + " is not in [0, " + (8 * es - 1) + "]",
                        tensor, pos);
            }
            pos += 1;
        } else if (valueKind != KIND_RAW) {
            if (size - pos < 2) {
                throw err("truncated codebook size", tensor, pos);
            }
            k = u16(pos);
            int limit = version >= 3 && valueKind == KIND_CODEBOOK && es > 1
                    ? MAX_LARGE_CODEBOOK : MAX_CODEBOOK;
            if (k < 1 || k > limit) {
                throw err("codebook size " + k + " is not in [1, " + limit + "]", tensor,
                        pos);
            }
            pos += 2;
            shared = k;
            long c = 1;
            if (valueKind == KIND_CHANNEL_CODEBOOK) {
                if (size - pos < 10) {
                    throw err("truncated shared entry count, channel count and channel run",
                            tensor, pos);
                }
                shared = u16(pos);
                if (shared > k) {
                    throw err(shared + " shared entries, more than the K=" + k + " entries",
                            tensor, pos);
                }
                // Unsigned 32-bit each: compared as longs, without overflow.
                c = le32(buf, start + pos + 2);
                long r = le32(buf, start + pos + 6);
                if (c < 1 || r < 1) {
                    throw err("channel count " + c + " and channel run " + r
                            + " must both be >= 1", tensor, pos + 2);
                }
                if (n > 0 && (c > n || r > n / c || n % (c * r) != 0)) {
                    throw err(c + " channels of " + r + " elements do not tile the tensor's "
                            + n + " elements", tensor, pos + 2);
                }
                pos += 10;
                run = (int) Math.min(r, Integer.MAX_VALUE); // r <= n unless n == 0
            }
            long need = (shared + c * (k - shared)) * es; // < 2^44: no overflow
            if (size - pos < need) {
                throw err("truncated codebook: " + need + " bytes needed, " + (size - pos)
                        + " present", tensor, pos);
            }
            own = k - shared;
            if (own > 0) {
                channels = (int) c; // its own entries are present, so c < 2^31
            }
            // Present, so smaller than the payload: the int arithmetic below cannot overflow.
            book = buf;
            bookAt = start + pos;
            pos += (int) need;
        }
        byte[] fill = null;
        byte[] gaps = null;
        int stored = n;
        if (layout == LAYOUT_SPARSE) {
            if (size - pos < es) {
                throw err("truncated fill value: " + es + " bytes needed, " + (size - pos)
                        + " present", tensor, pos);
            }
            fill = Arrays.copyOfRange(buf, start + pos, start + pos + es);
            pos += es;
            int gapsAt = pos;
            Stream g = Stream.read(this, pos, size, n);
            gaps = new byte[(int) g.count];
            g.decode(gaps, 0);
            pos = g.end;
            long cursor = -1;
            for (int j = 0; j < gaps.length; j++) {
                cursor += (gaps[j] & 0xff) + 1;
                if (cursor >= n) {
                    throw err("sparse index entry " + j + " lands on element " + cursor
                            + ", past the " + n + " elements", tensor, gapsAt);
                }
            }
            stored = gaps.length;
        }
        if (valueKind == KIND_PLANES) {
            return decodePlanes(pos, size, n, stored, rotation, fill, gaps);
        }
        long expected = valueKind == KIND_RAW ? (long) stored * es : stored;
        int valuesAt = pos;
        if (valueKind == KIND_RAW && size - pos >= 2 && (buf[start + pos + 1] & 0xff) != 8) {
            throw err("a raw value stream must have 8-bit symbols, this one has "
                    + (buf[start + pos + 1] & 0xff), tensor, pos + 1);
        }
        // Indices past 8 bits (rANS only) when the codebook has more than 256 entries.
        Stream v = Stream.read(this, pos, size, expected, k > MAX_CODEBOOK ? 16 : 8);
        byte[] values = null;
        int[] wide = null;
        if (v.bits > 8) {
            wide = new int[(int) v.count];
            v.decodeWide(wide);
        } else {
            values = new byte[(int) v.count];
            v.decode(values, 0);
        }
        pos = v.end;
        if (v.count != expected) {
            throw err("value stream holds " + v.count + " symbols, expected " + expected,
                    tensor, valuesAt);
        }
        if (pos != size) {
            throw err((size - pos) + " trailing bytes after the value stream", tensor, pos);
        }
        if (book != null && (k < MAX_CODEBOOK || wide != null)) {
            for (int j = 0; j < v.count; j++) {
                int s = wide != null ? wide[j] : values[j] & 0xff;
                if (s >= k) {
                    throw err("value " + j + " is codebook index " + s + ", but the codebook has "
                            + k + " entries"
                            + (valueKind == KIND_CHANNEL_CODEBOOK ? " per channel" : ""), tensor,
                            valuesAt);
                }
            }
        }
        if (layout == LAYOUT_DENSE && book == null) {
            return values; // the raw bytes are the tensor's bytes
        }
        byte[] out = new byte[n * es];
        final int outOff = 0;
        if (layout == LAYOUT_DENSE) {
            if (wide != null) {
                for (int i = 0; i < n; i++) {
                    System.arraycopy(book, bookAt + wide[i] * es, out, outOff + i * es, es);
                }
            } else if (own == 0) {
                expandCodebook(values, 0, n, book, bookAt, es, out, outOff, k, 0);
            } else {
                // Runs of `run` elements, channel 0, 1, ..., channels - 1, 0, ... (C x R
                // divides n).
                for (int i = 0, c = 0; i < n; i += run) {
                    expandCodebook(values, i, run, book, bookAt, es, out, outOff + i * es,
                            shared, c * own);
                    if (++c == channels) {
                        c = 0;
                    }
                }
            }
            return out;
        }
        fillElements(out, outOff, n, fill, es);
        long cursor = -1;
        for (int j = 0; j < stored; j++) {
            cursor += (gaps[j] & 0xff) + 1;
            int at = (int) cursor;
            int dst = outOff + at * es;
            if (book != null) {
                int entry = wide != null ? wide[j] : values[j] & 0xff;
                if (entry >= shared) {
                    entry += (at / run % channels) * own;
                }
                System.arraycopy(book, bookAt + entry * es, out, dst, es);
            } else {
                System.arraycopy(values, j * es, out, dst, es);
            }
        }
        return out;
    }

    /**
     * The planes kind: {@code es} streams of {@code stored} 8-bit symbols, plane b holding
     * byte b of each stored element's bits rotated left by {@code rotation}.
     */
    private byte[] decodePlanes(int pos, int size, int n, int stored, int rotation, byte[] fill,
            byte[] gaps) throws TfedgeFormatException {
        final int es = elementSize;
        byte[][] planes = new byte[es][];
        for (int b = 0; b < es; b++) {
            int at = pos;
            if (size - pos >= 2 && (buf[start + pos + 1] & 0xff) != 8) {
                throw err("plane stream " + b + " must have 8-bit symbols, this one has "
                        + (buf[start + pos + 1] & 0xff), tensor, pos + 1);
            }
            Stream s = Stream.read(this, pos, size, stored);
            planes[b] = new byte[(int) s.count];
            s.decode(planes[b], 0);
            pos = s.end;
            if (s.count != stored) {
                throw err("plane stream " + b + " holds " + s.count + " symbols, expected "
                        + stored, tensor, at);
            }
        }
        if (pos != size) {
            throw err((size - pos) + " trailing bytes after the plane streams", tensor, pos);
        }
        byte[] out = new byte[n * es];
        if (fill != null) {
            fillElements(out, 0, n, fill, es);
        }
        final int bits = 8 * es;
        long cursor = -1;
        for (int j = 0; j < stored; j++) {
            long v = 0;
            for (int b = 0; b < es; b++) {
                v |= (planes[b][j] & 0xffL) << (8 * b);
            }
            if (rotation != 0) {
                long mask = bits == 64 ? -1L : (1L << bits) - 1;
                v = ((v >>> rotation) | (v << (bits - rotation))) & mask;
            }
            int at = j;
            if (gaps != null) {
                cursor += (gaps[j] & 0xff) + 1;
                at = (int) cursor;
            }
            for (int b = 0; b < es; b++) {
                out[at * es + b] = (byte) (v >>> (8 * b));
            }
        }
        return out;
    }

    /** The first payload format version that has value kind {@code kind}. */
    static int kindVersion(int kind) {
        return kind == KIND_PLANES ? 3 : kind == KIND_CHANNEL_CODEBOOK ? 2 : 1;
    }

    /** The value kind's name as the numpy reader spells it. */
    static String kindName(int kind) {
        if (kind == KIND_PLANES) {
            return "planes";
        }
        return kind == KIND_RAW ? "raw" : kind == KIND_CODEBOOK ? "codebook" : "channel_codebook";
    }

    private int u16(int pos) {
        return (buf[start + pos] & 0xff) | (buf[start + pos + 1] & 0xff) << 8;
    }

    /**
     * Looks up symbols {@code sym[from, from + n)} in the entries that start at
     * {@code book[b0]} and writes the elements from {@code out[o]} on: symbol j is entry j
     * when j < {@code shared}, else entry {@code j + add} (a channel's own entries).
     */
    private static void expandCodebook(byte[] sym, int from, int n, byte[] book, int b0,
            int es, byte[] out, int o, int shared, int add) {
        final int end = from + n;
        if (add == 0) {
            if (es == 1) {
                for (int i = from, d = o; i < end; i++, d++) {
                    out[d] = book[b0 + (sym[i] & 0xff)];
                }
            } else if (es == 4) {
                for (int i = from, d = o; i < end; i++, d += 4) {
                    int b = b0 + ((sym[i] & 0xff) << 2);
                    out[d] = book[b];
                    out[d + 1] = book[b + 1];
                    out[d + 2] = book[b + 2];
                    out[d + 3] = book[b + 3];
                }
            } else {
                for (int i = from, d = o; i < end; i++, d += es) {
                    System.arraycopy(book, b0 + (sym[i] & 0xff) * es, out, d, es);
                }
            }
            return;
        }
        if (es == 1) {
            for (int i = from, d = o; i < end; i++, d++) {
                int j = sym[i] & 0xff;
                out[d] = book[b0 + (j < shared ? j : j + add)];
            }
        } else if (es == 4) {
            for (int i = from, d = o; i < end; i++, d += 4) {
                int j = sym[i] & 0xff;
                int b = b0 + ((j < shared ? j : j + add) << 2);
                out[d] = book[b];
                out[d + 1] = book[b + 1];
                out[d + 2] = book[b + 2];
                out[d + 3] = book[b + 3];
            }
        } else {
            for (int i = from, d = o; i < end; i++, d += es) {
                int j = sym[i] & 0xff;
                System.arraycopy(book, b0 + (j < shared ? j : j + add) * es, out, d, es);
            }
        }
    }

    private static void fillElements(byte[] out, int o, int n, byte[] fill, int es) {
        boolean zero = true;
        for (int i = 0; i < es; i++) {
            zero &= fill[i] == 0;
        }
        int total = n * es;
        if (zero) {
            Arrays.fill(out, o, o + total, (byte) 0);
            return;
        }
        if (n == 0) {
            return;
        }
        System.arraycopy(fill, 0, out, o, es);
        int done = es;
        while (done < total) {
            int len = Math.min(done, total - done);
            System.arraycopy(out, o, out, o + done, len);
            done += len;
        }
    }

    // ---- streams --------------------------------------------------------------------------

    /** A checked stream (section 2.2) whose data is located but not yet decoded. */
    static final class Stream {
        final Payload p;
        int coding;
        int bits;
        long count;
        long dataSize;
        long blockSize;
        int[] lengths;
        long[] blockStarts;
        Rans rans; // rANS only (format version 3)
        int dataAt; // payload offset of the data
        int end; // payload offset just past the stream

        private Stream(Payload p) {
            this.p = p;
        }

        /**
         * Reads the stream header at payload offset {@code offset} with the numpy reader's
         * checks; {@code size} is the payload's length and {@code maxCount} the most symbols
         * the caller accepts.
         */
        static Stream read(Payload p, int offset, int size, long maxCount)
                throws TfedgeFormatException {
            return read(p, offset, size, maxCount, 8);
        }

        /** The same, for a stream whose symbols may be up to {@code maxBits} wide. */
        static Stream read(Payload p, int offset, int size, long maxCount, int maxBits)
                throws TfedgeFormatException {
            String name = p.tensor;
            Stream s = new Stream(p);
            if (size - offset < STREAM_HEADER) {
                throw err("truncated stream header: " + STREAM_HEADER + " bytes needed, "
                        + Math.max(0, size - offset) + " present", name, offset);
            }
            int a = p.start + offset;
            s.coding = p.buf[a] & 0xff;
            s.bits = p.buf[a + 1] & 0xff;
            s.count = le32(p.buf, a + 2);
            s.dataSize = le32(p.buf, a + 6);
            if (s.coding != CODING_FIXED && s.coding != CODING_HUFFMAN
                    && s.coding != Rans.CODING_RANS) {
                throw err("unknown stream coding " + s.coding + " (expected 0, 1 or 2)", name,
                        offset);
            }
            if (s.coding == Rans.CODING_RANS && p.version < 3) {
                throw err("a rANS stream needs payload format version 3, this payload says "
                        + p.version, name, offset);
            }
            // A payload's streams hold symbols of at most 8 bits, 16 for the indices of
            // a codebook of more than 256 entries (rANS only).
            int widest = Math.min(s.coding == Rans.CODING_RANS ? Rans.MAX_BITS : 8, maxBits);
            if (s.bits < 1 || s.bits > widest) {
                throw err("stream symbol width " + s.bits + " is not in [1, " + widest + "]",
                        name, offset + 1);
            }
            if (s.count > maxCount) {
                throw err("stream holds " + s.count + " symbols, more than the " + maxCount
                        + " allowed", name, offset + 2);
            }
            int pos = offset + STREAM_HEADER;
            if (s.coding == Rans.CODING_RANS) {
                int[] next = new int[1];
                s.rans = Rans.parse(p.buf, p.start, size, pos, s.bits, s.count, s.dataSize,
                        name, next);
                pos = next[0];
                if (size - pos < s.dataSize) {
                    throw err("truncated stream data: " + s.dataSize + " bytes needed, "
                            + (size - pos) + " present", name, pos);
                }
                s.dataAt = pos;
                s.end = pos + (int) s.dataSize;
                return s;
            }
            if (s.coding == CODING_FIXED) {
                long want = (s.count * s.bits + 7) / 8;
                if (s.dataSize != want) {
                    throw err("fixed-width stream of " + s.count + " x " + s.bits
                            + "-bit symbols has data size " + s.dataSize + ", expected " + want,
                            name, offset + 6);
                }
                if (size - pos < s.dataSize) {
                    throw err("truncated stream data: " + s.dataSize + " bytes needed, "
                            + (size - pos) + " present", name, pos);
                }
                s.dataAt = pos;
                s.end = pos + (int) s.dataSize;
                return s;
            }
            int tableSize = ((1 << s.bits) + 1) / 2;
            if (size - pos < 4 + tableSize) {
                throw err("truncated Huffman stream header", name, pos);
            }
            s.blockSize = le32(p.buf, p.start + pos);
            if (s.blockSize < 1) {
                throw err("Huffman block size is 0", name, pos);
            }
            if (s.blockSize > MAX_BLOCK_SIZE) {
                throw err("Huffman block size " + s.blockSize + " is over the "
                        + MAX_BLOCK_SIZE + " symbols a reader accepts", name, pos);
            }
            pos += 4;
            s.lengths = new int[1 << s.bits];
            for (int i = 0; i < s.lengths.length; i++) {
                int b = p.buf[p.start + pos + (i >> 1)] & 0xff;
                s.lengths[i] = (i & 1) == 0 ? b >>> 4 : b & 15;
            }
            String problem = lengthProblem(s.lengths, s.count);
            if (problem != null) {
                throw err(problem, name, pos);
            }
            pos += tableSize;
            if (s.count > 8 * s.dataSize) {
                throw err("Huffman stream claims " + s.count + " symbols in " + s.dataSize
                        + " bytes of data (every code takes at least one bit)", name,
                        offset + 2);
            }
            long nblocks = (s.count + s.blockSize - 1) / s.blockSize;
            long noffsets = Math.max(0, nblocks - 1);
            if (size - pos < 4 * noffsets) {
                throw err("truncated block offsets: " + 4 * noffsets + " bytes needed, "
                        + (size - pos) + " present", name, pos);
            }
            s.blockStarts = new long[(int) nblocks];
            for (int i = 1; i < nblocks; i++) {
                long v = le32(p.buf, p.start + pos + 4 * (i - 1));
                if (i > 1 && v < s.blockStarts[i - 1]) {
                    throw err("Huffman block offsets decrease", name, pos);
                }
                s.blockStarts[i] = v;
            }
            if (noffsets > 0 && s.blockStarts[(int) nblocks - 1] > 8 * s.dataSize) {
                throw err("Huffman block offset " + s.blockStarts[(int) nblocks - 1]
                        + " is past the data (" + 8 * s.dataSize + " bits)", name,
                        pos + 4 * (noffsets - 1));
            }
            pos += 4 * (int) noffsets;
            if (size - pos < s.dataSize) {
                throw err("truncated stream data: " + s.dataSize + " bytes needed, "
                        + (size - pos) + " present", name, pos);
            }
            s.dataAt = pos;
            s.end = pos + (int) s.dataSize;
            return s;
        }

        /** Why a code-length table is invalid for {@code count} symbols, or null. */
        static String lengthProblem(int[] lengths, long count) {
            int nonzero = 0;
            int only = 0;
            long kraft = 0;
            for (int l : lengths) {
                if (l > 0) {
                    nonzero++;
                    only = l;
                    kraft += 1L << (MAX_CODE_LENGTH - l);
                }
            }
            if (count == 0) {
                return nonzero > 0
                        ? "a stream of 0 symbols must have an all-zero code-length table" : null;
            }
            if (nonzero == 0) {
                return "the code-length table is all zero but the stream has symbols";
            }
            if (nonzero == 1) {
                return only != 1 ? "the only code has length " + only + ", expected 1" : null;
            }
            if (kraft != 1L << MAX_CODE_LENGTH) {
                String kind = kraft > 1L << MAX_CODE_LENGTH
                        ? "over-subscribed (not a prefix code)" : "incomplete";
                return "the code lengths are " + kind + ": Kraft sum " + kraft + "/"
                        + (1 << MAX_CODE_LENGTH);
            }
            return null;
        }

        /** Decodes all {@code count} symbols of a stream wider than 8 bits (rANS). */
        void decodeWide(int[] out) throws TfedgeFormatException {
            if (count == 0) {
                return;
            }
            byte[] d = Arrays.copyOfRange(p.buf, p.start + dataAt,
                    p.start + dataAt + (int) dataSize + 8);
            rans.decode(d, dataSize, dataAt, null, out, 0, (int) count, p.tensor);
        }

        /** Decodes all {@code count} symbols into {@code out[o, o + count)}. */
        void decode(byte[] out, int o) throws TfedgeFormatException {
            int n = (int) count;
            if (n == 0) {
                return;
            }
            // The data with 8 zero bytes of padding, so bit windows never leave it.
            byte[] d = Arrays.copyOfRange(p.buf, p.start + dataAt,
                    p.start + dataAt + (int) dataSize + 8);
            if (coding == Rans.CODING_RANS) {
                rans.decode(d, dataSize, dataAt, out, null, o, n, p.tensor);
            } else if (coding == CODING_FIXED) {
                decodeFixed(d, out, o, n);
            } else {
                decodeHuffman(d, out, o, n);
            }
        }

        private void decodeFixed(byte[] d, byte[] out, int o, int n) {
            if (bits == 8) {
                System.arraycopy(d, 0, out, o, n);
                return;
            }
            final int mask = (1 << bits) - 1;
            long bit = 0;
            for (int i = 0; i < n; i++, bit += bits) {
                int byteIdx = (int) (bit >>> 3);
                int w = ((d[byteIdx] & 0xff) << 8) | (d[byteIdx + 1] & 0xff);
                out[o + i] = (byte) ((w >>> (16 - bits - (int) (bit & 7))) & mask);
            }
        }

        private void decodeHuffman(byte[] d, byte[] out, int o, int n)
                throws TfedgeFormatException {
            int maxLen = 0;
            for (int l : lengths) {
                maxLen = Math.max(maxLen, l);
            }
            // Canonical code, ordered by (length, symbol); a table indexed by the next
            // maxLen bits gives (length << 8 | symbol), or -1 for a pattern that is no code.
            int[] table = new int[1 << maxLen];
            Arrays.fill(table, -1);
            int code = 0;
            int prevLen = 0;
            for (int l = 1; l <= maxLen; l++) {
                for (int sym = 0; sym < lengths.length; sym++) {
                    if (lengths[sym] != l) {
                        continue;
                    }
                    if (prevLen != 0) {
                        code = (code + 1) << (l - prevLen);
                    }
                    prevLen = l;
                    Arrays.fill(table, code << (maxLen - l), (code + 1) << (maxLen - l),
                            sym | (l << 8));
                }
            }
            final long limit = dataSize * 8;
            final int shift = 64 - maxLen;
            final int nblocks = blockStarts.length;
            int i = 0;
            for (int b = 0; b < nblocks; b++) {
                long bit = blockStarts[b];
                // A 64-bit window of the data, most significant bit first: `acc` holds
                // `have` valid bits from bit position `bit` on (the rest are zero).
                int x = (int) (bit >>> 3);
                long acc = 0;
                int have = 0;
                int skip = (int) (bit & 7);
                while (have <= 56) {
                    acc |= (d[x++] & 0xffL) << (56 - have);
                    have += 8;
                }
                acc <<= skip;
                have -= skip;
                int blockEnd = (int) Math.min((long) n, (b + 1) * blockSize);
                for (; i < blockEnd; i++) {
                    if (have < maxLen) {
                        while (have <= 56) {
                            acc |= (d[x++] & 0xffL) << (56 - have);
                            have += 8;
                        }
                    }
                    int e = table[(int) (acc >>> shift)];
                    int len = e >>> 8;
                    bit += len;
                    if (e < 0 || bit > limit) {
                        throw err("Huffman block " + b + " of " + nblocks + " reads past the end"
                                + " of the " + dataSize + "-byte data or holds a bit pattern "
                                + "that is no code", p.tensor, dataAt);
                    }
                    acc <<= len;
                    have -= len;
                    out[o + i] = (byte) e;
                }
            }
        }
    }

    // ---- helpers --------------------------------------------------------------------------

    static TfedgeFormatException err(String msg, String tensor, long at) {
        return new TfedgeFormatException(msg, tensor, at);
    }

    static long le32(byte[] b, int o) {
        return ((b[o] & 0xffL)) | ((b[o + 1] & 0xffL) << 8) | ((b[o + 2] & 0xffL) << 16)
                | ((b[o + 3] & 0xffL) << 24);
    }

    static long le64(byte[] b, int o) {
        return le32(b, o) | (le32(b, o + 4) << 32);
    }

    /** Python's repr() of a bytes object. */
    static String pyBytes(byte[] b, int off, int len) {
        boolean single = false;
        boolean dbl = false;
        for (int i = 0; i < len; i++) {
            single |= b[off + i] == '\'';
            dbl |= b[off + i] == '"';
        }
        char q = single && !dbl ? '"' : '\'';
        StringBuilder sb = new StringBuilder("b").append(q);
        for (int i = 0; i < len; i++) {
            int c = b[off + i] & 0xff;
            if (c == '\\' || c == q) {
                sb.append('\\').append((char) c);
            } else if (c == '\n') {
                sb.append("\\n");
            } else if (c == '\r') {
                sb.append("\\r");
            } else if (c == '\t') {
                sb.append("\\t");
            } else if (c < 0x20 || c >= 0x7f) {
                sb.append(String.format("\\x%02x", c));
            } else {
                sb.append((char) c);
            }
        }
        return sb.append(q).toString();
    }
}
