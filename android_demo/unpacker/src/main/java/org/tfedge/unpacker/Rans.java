package org.tfedge.unpacker;

/**
 * Interleaved rANS streams (docs/FORMAT.md section 2.2, coding 2, format version 3).
 *
 * <p>{@code lanes} 32-bit states share one stream of 16-bit little-endian words; symbol j of a
 * block is decoded by lane {@code j mod lanes}: the slot {@code x mod 2^L} falls in symbol s's
 * range {@code [cum, cum + freq)}, then {@code x = freq * (x >> L) + slot - cum}, and when
 * {@code x < 2^16} the lane takes the next word: {@code x = x << 16 | word}. A block starts
 * with its lanes' states (u32 each) and must end with every state at 2^16 and its words
 * exactly consumed. Checks and messages are the numpy reader's, in its order.
 */
final class Rans {
    static final int CODING_RANS = 2;
    static final int MAX_BITS = 16;
    static final int MAX_SCALE_BITS = 16;
    static final int MAX_LANES = 32;
    static final int HEADER = 10; // u8 L, u8 lanes, u32 block size, u32 table size
    static final long STATE_LOW = 1L << 16;

    int scale;
    int lanes;
    long blockSize;
    long[] freqs; // one per symbol value of the alphabet
    long[] blockStarts; // byte offset of each block in the data

    private Rans() {}

    /**
     * Reads the rANS part of a stream header at payload offset {@code pos} (after the ten
     * common bytes) and returns it; {@code next[0]} receives the offset just past the block
     * offsets (where the data starts).
     */
    static Rans parse(byte[] buf, int start, int size, int pos, int bits, long count,
            long dataSize, String tensor, int[] next) throws TfedgeFormatException {
        if (size - pos < HEADER) {
            throw Payload.err("truncated rANS stream header", tensor, pos);
        }
        Rans r = new Rans();
        int a = start + pos;
        r.scale = buf[a] & 0xff;
        r.lanes = buf[a + 1] & 0xff;
        r.blockSize = Payload.le32(buf, a + 2);
        long tableSize = Payload.le32(buf, a + 6);
        if (r.scale < 1 || r.scale > MAX_SCALE_BITS) {
            throw Payload.err("rANS scale bits " + r.scale + " is not in [1, " + MAX_SCALE_BITS
                    + "]", tensor, pos);
        }
        if (r.lanes < 1 || r.lanes > MAX_LANES) {
            throw Payload.err("rANS lane count " + r.lanes + " is not in [1, " + MAX_LANES
                    + "]", tensor, pos + 1);
        }
        if (r.blockSize < 1) {
            throw Payload.err("rANS block size is 0", tensor, pos + 2);
        }
        pos += HEADER;
        if (size - pos < tableSize) {
            throw Payload.err("truncated rANS table: " + tableSize + " bytes needed, "
                    + (size - pos) + " present", tensor, pos);
        }
        r.freqs = readTable(buf, start + pos, (int) tableSize, bits, r.scale, tensor, pos);
        boolean empty = true;
        for (long f : r.freqs) {
            empty &= f == 0;
        }
        if ((count == 0) != empty) {
            throw Payload.err("a rANS stream has an empty frequency table exactly when it has "
                    + "0 symbols", tensor, pos);
        }
        pos += (int) tableSize;
        long nblocks = count == 0 ? 0 : (count + r.blockSize - 1) / r.blockSize;
        long noffsets = Math.max(0, nblocks - 1);
        if (size - pos < 4 * noffsets) {
            throw Payload.err("truncated block offsets: " + 4 * noffsets + " bytes needed, "
                    + (size - pos) + " present", tensor, pos);
        }
        r.blockStarts = new long[(int) nblocks];
        for (int i = 1; i < nblocks; i++) {
            r.blockStarts[i] = Payload.le32(buf, start + pos + 4 * (i - 1));
        }
        for (int i = 2; i < nblocks; i++) {
            if (r.blockStarts[i] < r.blockStarts[i - 1]) {
                throw Payload.err("rANS block offsets decrease", tensor, pos);
            }
        }
        if (noffsets > 0 && r.blockStarts[(int) nblocks - 1] > dataSize) {
            throw Payload.err("rANS block offset " + r.blockStarts[(int) nblocks - 1]
                    + " is past the data (" + dataSize + " bytes)", tensor,
                    pos + 4 * (noffsets - 1));
        }
        next[0] = pos + 4 * (int) noffsets;
        return r;
    }

    /**
     * The frequency table in {@code buf[from, from + len)}: varint A, then per symbol a
     * varint frequency, a zero being followed by a varint count of further absent symbols.
     */
    static long[] readTable(byte[] buf, int from, int len, int bits, int scale, String tensor,
            int at) throws TfedgeFormatException {
        int[] i = {0};
        long a = varint(buf, from, len, i, tensor, at);
        if (a > (1L << bits)) {
            throw Payload.err("rANS table describes " + a + " symbols, the " + bits
                    + "-bit alphabet has " + (1 << bits), tensor, at);
        }
        long[] freqs = new long[1 << bits];
        long total = 1L << scale;
        int s = 0;
        while (s < a) {
            int itemAt = i[0];
            long f = varint(buf, from, len, i, tensor, at);
            if (f > total) {
                throw Payload.err("rANS frequency " + f + " exceeds the total 2**" + scale,
                        tensor, at + itemAt);
            }
            if (f != 0) {
                freqs[s++] = f;
                continue;
            }
            long run = varint(buf, from, len, i, tensor, at);
            if (s + 1 + run > a) {
                throw Payload.err("rANS table run of " + (run + 1) + " absent symbols passes A="
                        + a, tensor, at + itemAt);
            }
            s += 1 + (int) run;
        }
        if (i[0] != len) {
            throw Payload.err((len - i[0]) + " bytes after the rANS frequency table", tensor,
                    at + i[0]);
        }
        long sum = 0;
        for (long f : freqs) {
            sum += f;
        }
        if (a > 0 && sum != total) {
            throw Payload.err("rANS frequencies sum to " + sum + ", expected 2**" + scale,
                    tensor, at);
        }
        if (a > 0 && freqs[(int) a - 1] == 0) {
            throw Payload.err("rANS table's last described symbol is absent", tensor, at);
        }
        return freqs;
    }

    private static long varint(byte[] buf, int from, int len, int[] i, String tensor, int at)
            throws TfedgeFormatException {
        long value = 0;
        for (int shift = 0; shift <= 14; shift += 7) {
            if (i[0] >= len) {
                throw Payload.err("truncated rANS frequency table", tensor, at + i[0]);
            }
            int b = buf[from + i[0]] & 0xff;
            i[0]++;
            value |= (long) (b & 0x7f) << shift;
            if (b < 0x80) {
                return value;
            }
        }
        throw Payload.err("rANS frequency table varint longer than 3 bytes", tensor,
                at + i[0] - 1);
    }

    /**
     * Decodes {@code n} symbols from the data {@code d} ({@code dataSize} bytes, payload
     * offset {@code dataAt}) into {@code out[o, o + n)}, or {@code wide[o, o + n)} when
     * {@code out} is null (symbols wider than 8 bits).
     */
    void decode(byte[] d, long dataSize, int dataAt, byte[] out, int[] wide, int o, int n,
            String tensor) throws TfedgeFormatException {
        if (n == 0) {
            return;
        }
        final int nblocks = blockStarts.length;
        final int head = 4 * lanes;
        long[] ends = new long[nblocks];
        for (int b = 0; b < nblocks; b++) {
            ends[b] = b + 1 < nblocks ? blockStarts[b + 1] : dataSize;
            long bytes = ends[b] - blockStarts[b];
            if (bytes < head || (bytes - head) % 2 != 0) {
                throw Payload.err("rANS block " + b + " is " + bytes + " bytes: " + lanes
                        + " states of 4 bytes and whole 16-bit words needed", tensor,
                        dataAt + blockStarts[b]);
            }
        }
        long[][] x = new long[nblocks][lanes];
        for (int b = 0; b < nblocks; b++) {
            for (int l = 0; l < lanes; l++) {
                x[b][l] = Payload.le32(d, (int) blockStarts[b] + 4 * l);
                if (x[b][l] < STATE_LOW) {
                    throw Payload.err("rANS block " + b + " lane " + l + " starts in state "
                            + x[b][l] + ", below 2**16", tensor, dataAt + blockStarts[b] + 4 * l);
                }
            }
        }
        // Per slot: its symbol, and its symbol's frequency and cumulative frequency.
        final int slots = 1 << scale;
        final int mask = slots - 1;
        int[] slotSym = new int[slots];
        long[] slotFreq = new long[slots];
        long[] slotBias = new long[slots];
        int cum = 0;
        for (int s = 0; s < freqs.length; s++) {
            for (int k = 0; k < freqs[s]; k++) {
                slotSym[cum + k] = s;
                slotFreq[cum + k] = freqs[s];
                slotBias[cum + k] = k;
            }
            cum += (int) freqs[s];
        }
        long[] read = new long[nblocks]; // words taken (may pass the block's own)
        boolean[] over = new boolean[nblocks];
        for (int b = 0; b < nblocks; b++) {
            long[] xs = x[b];
            long words = (ends[b] - blockStarts[b] - head) / 2;
            int wordAt = (int) blockStarts[b] + head;
            int first = (int) (b * blockSize);
            int last = (int) Math.min((long) n, (b + 1) * blockSize);
            for (int i = first, lane = 0; i < last; i++) {
                long v = xs[lane];
                int slot = (int) (v & mask);
                if (out != null) {
                    out[o + i] = (byte) slotSym[slot];
                } else {
                    wide[o + i] = slotSym[slot];
                }
                v = slotFreq[slot] * (v >>> scale) + slotBias[slot];
                if (v < STATE_LOW) {
                    long w = 0;
                    if (read[b] < words) {
                        int at = wordAt + 2 * (int) read[b];
                        w = (d[at] & 0xff) | ((d[at + 1] & 0xff) << 8);
                    } else {
                        over[b] = true;
                    }
                    read[b]++;
                    v = (v << 16) | w;
                }
                xs[lane] = v;
                if (++lane == lanes) {
                    lane = 0;
                }
            }
        }
        for (int b = 0; b < nblocks; b++) {
            if (over[b]) {
                throw Payload.err("rANS block " + b + " reads past its data", tensor,
                        dataAt + ends[b]);
            }
        }
        for (int b = 0; b < nblocks; b++) {
            long words = (ends[b] - blockStarts[b] - head) / 2;
            if (read[b] != words) {
                throw Payload.err("rANS block " + b + " leaves " + (words - read[b])
                        + " of its words unread", tensor, dataAt + blockStarts[b]);
            }
        }
        for (int b = 0; b < nblocks; b++) {
            for (int l = 0; l < lanes; l++) {
                if (x[b][l] != STATE_LOW) {
                    throw Payload.err("rANS block " + b + " does not end in the initial state "
                            + "(corrupt data)", tensor, dataAt + blockStarts[b]);
                }
            }
        }
    }
}
