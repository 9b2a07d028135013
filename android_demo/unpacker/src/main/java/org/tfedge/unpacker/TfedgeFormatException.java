package org.tfedge.unpacker;

/**
 * A packed model or payload is malformed: truncated, corrupted, or of a newer format.
 *
 * <p>The message has the same shape as Python's {@code tfedge.FormatError}: an optional
 * {@code tensor 'name'} and {@code byte N} prefix, then the problem.
 */
public class TfedgeFormatException extends Exception {
    private static final long serialVersionUID = 1L;

    private final String tensor;
    private final long offset;
    private final String problem;

    public TfedgeFormatException(String problem) {
        this(problem, null, -1);
    }

    public TfedgeFormatException(String problem, String tensor, long offset) {
        super(format(problem, tensor, offset));
        this.problem = problem;
        this.tensor = tensor;
        this.offset = offset;
    }

    /** The tensor the problem is in, or null when unknown. */
    public String getTensor() {
        return tensor;
    }

    /** The byte offset of the problem, or -1 when unknown. */
    public long getOffset() {
        return offset;
    }

    /** The problem without the tensor and offset prefix. */
    public String getProblem() {
        return problem;
    }

    /** Returns a copy that names {@code newTensor} when this one names no tensor. */
    TfedgeFormatException withTensor(String newTensor) {
        if (tensor != null || newTensor == null) {
            return this;
        }
        TfedgeFormatException e = new TfedgeFormatException(problem, newTensor, offset);
        e.initCause(this);
        return e;
    }

    static String format(String problem, String tensor, long offset) {
        StringBuilder sb = new StringBuilder();
        if (tensor != null) {
            sb.append("tensor ").append(pyRepr(tensor));
        }
        if (offset >= 0) {
            if (sb.length() > 0) {
                sb.append(", ");
            }
            sb.append("byte ").append(offset);
        }
        if (sb.length() > 0) {
            sb.append(": ");
        }
        return sb.append(problem).toString();
    }

    /** Python's repr() of a str, for the printable names tensors have. */
    static String pyRepr(String s) {
        char q = (s.indexOf('\'') >= 0 && s.indexOf('"') < 0) ? '"' : '\'';
        StringBuilder sb = new StringBuilder(s.length() + 2).append(q);
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            if (c == '\\') {
                sb.append("\\\\");
            } else if (c == q) {
                sb.append('\\').append(c);
            } else if (c == '\n') {
                sb.append("\\n");
            } else if (c == '\r') {
                sb.append("\\r");
            } else if (c == '\t') {
                sb.append("\\t");
            } else if (c < 0x20 || c == 0x7f) {
                sb.append(String.format("\\x%02x", (int) c));
            } else {
                sb.append(c);
            }
        }
        return sb.append(q).toString();
    }
}
