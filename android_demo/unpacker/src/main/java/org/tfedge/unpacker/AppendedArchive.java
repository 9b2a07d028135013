package org.tfedge.unpacker;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * The zip archive appended to a {@code .tflite} file: TFLite Support's metadata writer appends
 * one holding the metadata's associated files (label lists and the like), its offsets counted
 * from the file's start. The expanded model carries it over after its flatbuffer, with those
 * offsets moved to where it lands, as {@code tfedge.tflite.write} does.
 */
final class AppendedArchive {
    private static final int END = 0x06054b50; // "PK\5\6": end of central directory
    private static final int CENTRAL = 0x02014b50; // "PK\1\2": central directory entry
    private static final int LOCAL = 0x04034b50; // "PK\3\4": local file header
    private static final int END_SIZE = 22;
    private static final int CENTRAL_SIZE = 46;
    private static final int MAX_COMMENT = 0xFFFF;

    private static final String ZIP64 = "the zip archive appended to this .tflite (its "
            + "metadata's associated files) is a ZIP64 archive, which tfedge cannot carry "
            + "over; rewrite it as a plain zip with TFLite Support's metadata writer";

    private final int start; // where the archive begins in the file
    private final int base; // stored offset + base = position in the file
    private final int end; // the end record's position
    private final int cdOffset; // the stored central directory offset
    private final int[] entries; // positions of the central directory entries

    private AppendedArchive(int start, int base, int end, int cdOffset, int[] entries) {
        this.start = start;
        this.base = base;
        this.end = end;
        this.cdOffset = cdOffset;
        this.entries = entries;
    }

    /** The archive appended to {@code b[0, size)}, or null when there is none. */
    static AppendedArchive find(byte[] b, int size) throws TfedgeFormatException {
        ByteBuffer le = ByteBuffer.wrap(b, 0, size).order(ByteOrder.LITTLE_ENDIAN);
        int end = -1;
        for (int p = size - END_SIZE; p >= Math.max(0, size - END_SIZE - MAX_COMMENT); p--) {
            if (le.getInt(p) == END) {
                end = p;
                break;
            }
        }
        if (end < 0) {
            return null;
        }
        int disk = le.getShort(end + 4) & 0xFFFF;
        int cdDisk = le.getShort(end + 6) & 0xFFFF;
        int nDisk = le.getShort(end + 8) & 0xFFFF;
        int n = le.getShort(end + 10) & 0xFFFF;
        long cdSize = le.getInt(end + 12) & 0xFFFFFFFFL;
        long cdOffset = le.getInt(end + 16) & 0xFFFFFFFFL;
        int comment = le.getShort(end + 20) & 0xFFFF;
        if (end + END_SIZE + comment != size || disk != 0 || cdDisk != 0 || nDisk != n) {
            return null;
        }
        if (cdSize == 0xFFFFFFFFL || cdOffset == 0xFFFFFFFFL) {
            throw new TfedgeFormatException(ZIP64, null, end);
        }
        // Offsets count from the file's start (TFLite Support's writer) or from the
        // archive's own (a zip concatenated to the model); the directory tells which.
        long base = end - cdSize - cdOffset;
        if (base < 0) {
            return null;
        }
        int[] entries = new int[n];
        long pos = cdOffset + base;
        long first = pos;
        for (int i = 0; i < n; i++) {
            if (pos + CENTRAL_SIZE > end || le.getInt((int) pos) != CENTRAL) {
                return null;
            }
            entries[i] = (int) pos;
            long local = le.getInt((int) pos + 42) & 0xFFFFFFFFL;
            if (local == 0xFFFFFFFFL) {
                throw new TfedgeFormatException(ZIP64, null, pos);
            }
            first = Math.min(first, local + base);
            pos += CENTRAL_SIZE + (le.getShort((int) pos + 28) & 0xFFFF)
                    + (le.getShort((int) pos + 30) & 0xFFFF)
                    + (le.getShort((int) pos + 32) & 0xFFFF);
        }
        if (pos != end || first < 8 || (n > 0 && le.getInt((int) first) != LOCAL)) {
            return null;
        }
        return new AppendedArchive((int) first, (int) base, end, (int) cdOffset, entries);
    }

    /** Bytes the archive takes. */
    int length(int size) {
        return size - start;
    }

    /**
     * Puts the archive of {@code b[0, size)} into {@code out} at {@code at}, its offsets
     * counted from the start of {@code out} (as TFLite Support's writer counts them).
     */
    void copyTo(byte[] b, int size, ByteBuffer out, int at) {
        ByteBuffer le = out.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        le.position(at);
        le.put(b, start, size - start);
        int delta = at - start + base;
        int move = at - start; // where a byte of the input lands in the output
        for (int e : entries) {
            le.putInt(e + move + 42, le.getInt(e + move + 42) + delta);
        }
        le.putInt(end + move + 16, cdOffset + delta);
    }
}
