package org.tfedge.demo;

import android.app.Activity;
import android.content.res.AssetManager;
import android.os.Bundle;
import android.os.SystemClock;
import android.widget.ScrollView;
import android.widget.TextView;
import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.Arrays;
import java.util.Locale;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.Tensor;
import org.tfedge.unpacker.TfedgeFormatException;
import org.tfedge.unpacker.Unpacker;

/**
 * Loads the first {@code assets/*.packed} model, expands it in memory with the tfedge
 * unpacker (no native code of ours), runs the stock LiteRT {@link Interpreter} once on a
 * fixed sample input and shows the output, the packed and expanded sizes and the times.
 */
public class MainActivity extends Activity {
    private TextView text;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        text = new TextView(this);
        text.setPadding(32, 32, 32, 32);
        text.setTextIsSelectable(true);
        text.setText("Expanding the packed model...");
        ScrollView scroll = new ScrollView(this);
        scroll.addView(text);
        setContentView(scroll);
        // Expansion and inference stay off the UI thread.
        new Thread(new Runnable() {
            @Override
            public void run() {
                final String report = runDemo();
                runOnUiThread(new Runnable() {
                    @Override
                    public void run() {
                        text.setText(report);
                    }
                });
            }
        }, "tfedge-demo").start();
    }

    private String runDemo() {
        StringBuilder out = new StringBuilder();
        try {
            String asset = findPackedAsset(getAssets());
            if (asset == null) {
                return "No assets/*.packed model in this APK. Make one with\n"
                        + "  tfedge compress model.tflite -o model.packed\n"
                        + "and put it in app/src/main/assets/.";
            }
            byte[] packed = readAll(getAssets().open(asset));
            Unpacker.Stats stats = new Unpacker.Stats();
            long t0 = SystemClock.elapsedRealtimeNanos();
            ByteBuffer model = Unpacker.expand(packed, packed.length, stats);
            long t1 = SystemClock.elapsedRealtimeNanos();

            Interpreter interpreter = new Interpreter(model);
            try {
                Tensor in = interpreter.getInputTensor(0);
                Tensor outTensor = interpreter.getOutputTensor(0);
                ByteBuffer input = sampleInput(in);
                ByteBuffer output = ByteBuffer.allocateDirect(outTensor.numBytes())
                        .order(ByteOrder.nativeOrder());
                long t2 = SystemClock.elapsedRealtimeNanos();
                interpreter.run(input, output);
                long t3 = SystemClock.elapsedRealtimeNanos();

                out.append("Model: assets/").append(asset).append('\n');
                out.append(String.format(Locale.ROOT, "Packed size:   %,d bytes%n",
                        packed.length));
                out.append(String.format(Locale.ROOT, "Expanded size: %,d bytes (%.2fx)%n",
                        model.capacity(), model.capacity() / (double) packed.length));
                out.append(String.format(Locale.ROOT, "Expansion: %.1f ms (%d payloads, "
                        + "%,d bytes decoded in %.1f ms)%n", (t1 - t0) / 1e6, stats.payloads,
                        stats.decodedBytes, stats.decodeNanos / 1e6));
                out.append(String.format(Locale.ROOT, "Inference: %.2f ms%n", (t3 - t2) / 1e6));
                out.append("Input ").append(describe(in)).append(": fixed sample\n");
                out.append("Output ").append(describe(outTensor)).append(":\n");
                out.append(formatOutput(outTensor, output));
            } finally {
                interpreter.close();
            }
        } catch (TfedgeFormatException e) {
            out.append("The packed model is malformed:\n").append(e.getMessage());
        } catch (IOException e) {
            out.append("Cannot read the asset: ").append(e);
        } catch (RuntimeException e) {
            out.append("The interpreter failed: ").append(e);
        }
        return out.toString();
    }

    static String findPackedAsset(AssetManager assets) throws IOException {
        String[] names = assets.list("");
        if (names == null) {
            return null;
        }
        Arrays.sort(names);
        for (String name : names) {
            if (name.endsWith(".packed")) {
                return name;
            }
        }
        return null;
    }

    static byte[] readAll(InputStream in) throws IOException {
        try {
            byte[] buf = new byte[Math.max(in.available(), 1 << 16)];
            int n = 0;
            int r;
            while ((r = in.read(buf, n, buf.length - n)) > 0) {
                n += r;
                if (n == buf.length) {
                    buf = Arrays.copyOf(buf, buf.length * 2);
                }
            }
            return Arrays.copyOf(buf, n);
        } finally {
            in.close();
        }
    }

    /** A deterministic input: a slow sine for float inputs, a byte ramp otherwise. */
    static ByteBuffer sampleInput(Tensor t) {
        ByteBuffer b = ByteBuffer.allocateDirect(t.numBytes()).order(ByteOrder.nativeOrder());
        if (t.dataType() == DataType.FLOAT32) {
            FloatBuffer f = b.asFloatBuffer();
            for (int i = 0; i < f.capacity(); i++) {
                f.put(i, (float) Math.sin(i * 0.05));
            }
        } else {
            for (int i = 0; i < b.capacity(); i++) {
                b.put(i, (byte) (i * 7));
            }
        }
        return b;
    }

    static String describe(Tensor t) {
        return t.dataType() + Arrays.toString(t.shape());
    }

    static String formatOutput(Tensor t, ByteBuffer output) {
        output.rewind();
        StringBuilder sb = new StringBuilder();
        if (t.dataType() != DataType.FLOAT32) {
            int n = Math.min(output.capacity(), 16);
            for (int i = 0; i < n; i++) {
                sb.append(output.get(i)).append(' ');
            }
            return sb.append('\n').toString();
        }
        FloatBuffer f = output.asFloatBuffer();
        int best = 0;
        for (int i = 0; i < f.capacity(); i++) {
            if (i < 10) {
                sb.append(String.format(Locale.ROOT, "  [%d] %.5f%n", i, f.get(i)));
            }
            if (f.get(i) > f.get(best)) {
                best = i;
            }
        }
        if (f.capacity() > 10) {
            sb.append("  ... ").append(f.capacity() - 10).append(" more\n");
        }
        return sb.append("Largest: [").append(best).append("]\n").toString();
    }
}
