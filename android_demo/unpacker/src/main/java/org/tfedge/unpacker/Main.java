package org.tfedge.unpacker;

import java.io.BufferedReader;
import java.io.File;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.Locale;

/**
 * Command line for the JVM: expand files, decode single payloads, and time expansion.
 *
 * <pre>
 *   java -cp unpacker.jar org.tfedge.unpacker.Main expand IN.tflite OUT.tflite
 *   java -cp unpacker.jar org.tfedge.unpacker.Main payload IN.bin OUT.bin [EXPECTED_SIZE]
 *   java -cp unpacker.jar org.tfedge.unpacker.Main batch JOBS.txt
 *   java -cp unpacker.jar org.tfedge.unpacker.Main bench SECONDS FILE...
 * </pre>
 *
 * {@code batch} runs one job per line ({@code expand IN OUT} or {@code payload IN OUT
 * [EXPECTED]}) in one JVM and prints one line per job: {@code OK} or {@code ERR message}.
 * {@code bench} prints one tab-separated line per file: name, packed bytes, expanded bytes,
 * runs, median and best seconds, MB/s of expanded output at the median (after a warm-up).
 * Exit status: 0 ok, 1 usage, 2 bad input.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws IOException {
        System.exit(run(args, System.out, System.err));
    }

    static int run(String[] args, PrintStream out, PrintStream err) throws IOException {
        if (args.length < 1) {
            err.println("usage: Main expand IN OUT | payload IN OUT [EXPECTED] | batch JOBS"
                    + " | bench SECONDS FILE...");
            return 1;
        }
        String cmd = args[0];
        try {
            if (cmd.equals("batch") && args.length == 2) {
                BufferedReader in = new BufferedReader(new InputStreamReader(
                        new FileInputStream(args[1]), "UTF-8"));
                try {
                    String line;
                    while ((line = in.readLine()) != null) {
                        if (line.trim().isEmpty()) {
                            continue;
                        }
                        String[] job = line.split("\t");
                        try {
                            job(job);
                            out.println("OK");
                        } catch (TfedgeFormatException e) {
                            out.println("ERR " + e.getMessage().replace('\n', ' '));
                        }
                    }
                } finally {
                    in.close();
                }
                return 0;
            }
            if (cmd.equals("bench") && args.length >= 3) {
                bench(Double.parseDouble(args[1]), args, out);
                return 0;
            }
            if ((cmd.equals("expand") && args.length == 3)
                    || (cmd.equals("payload") && (args.length == 3 || args.length == 4))) {
                job(args);
                return 0;
            }
        } catch (TfedgeFormatException e) {
            err.println("tfedge: " + e.getMessage());
            return 2;
        }
        err.println("usage: Main expand IN OUT | payload IN OUT [EXPECTED] | batch JOBS"
                + " | bench SECONDS FILE...");
        return 1;
    }

    private static void job(String[] job) throws IOException, TfedgeFormatException {
        byte[] in = read(new File(job[1]));
        if (job[0].equals("expand")) {
            ByteBuffer b = Unpacker.expand(in);
            byte[] o = new byte[b.remaining()];
            b.get(o);
            write(new File(job[2]), o);
        } else if (job[0].equals("payload")) {
            long expected = job.length > 3 ? Long.parseLong(job[3]) : -1;
            byte[] o = Payload.decode(in, 0, in.length, Payload.DEFAULT_BOUND, expected, null);
            write(new File(job[2]), o);
        } else {
            throw new IllegalArgumentException("unknown job " + job[0]);
        }
    }

    /**
     * Per file: expands it repeatedly for {@code seconds} after as long a warm-up (for the
     * JIT), then prints name, packed bytes, expanded bytes, runs, median and best seconds,
     * and MB/s of expanded output at the median.
     */
    private static void bench(double seconds, String[] args, PrintStream out)
            throws IOException, TfedgeFormatException {
        for (int f = 2; f < args.length; f++) {
            byte[] in = read(new File(args[f]));
            long expanded = 0;
            long warm = System.nanoTime() + (long) (seconds * 1e9);
            while (System.nanoTime() < warm) {
                expanded = Unpacker.expand(in).capacity();
            }
            double[] times = new double[16];
            int runs = 0;
            long deadline = System.nanoTime() + (long) (seconds * 1e9);
            do {
                long t0 = System.nanoTime();
                ByteBuffer b = Unpacker.expand(in);
                double dt = (System.nanoTime() - t0) / 1e9;
                expanded = b.capacity();
                if (runs == times.length) {
                    times = Arrays.copyOf(times, runs * 2);
                }
                times[runs++] = dt;
            } while (System.nanoTime() < deadline || runs < 5);
            double[] sorted = Arrays.copyOf(times, runs);
            Arrays.sort(sorted);
            double median = runs % 2 == 1 ? sorted[runs / 2]
                    : (sorted[runs / 2 - 1] + sorted[runs / 2]) / 2;
            out.println(String.format(Locale.ROOT, "%s\t%d\t%d\t%d\t%.6f\t%.6f\t%.1f",
                    new File(args[f]).getName(), in.length, expanded, runs, median, sorted[0],
                    expanded / median / 1e6));
        }
    }

    static byte[] read(File f) throws IOException {
        InputStream in = new FileInputStream(f);
        try {
            long len = f.length();
            if (len > Integer.MAX_VALUE) {
                throw new IOException(f + " is over 2 GiB");
            }
            byte[] b = new byte[(int) len];
            int off = 0;
            while (off < b.length) {
                int n = in.read(b, off, b.length - off);
                if (n < 0) {
                    throw new IOException(f + " shrank while being read");
                }
                off += n;
            }
            return b;
        } finally {
            in.close();
        }
    }

    static void write(File f, byte[] b) throws IOException {
        OutputStream o = new FileOutputStream(f);
        try {
            o.write(b);
        } finally {
            o.close();
        }
    }
}
