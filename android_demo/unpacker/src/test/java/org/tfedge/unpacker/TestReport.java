package org.tfedge.unpacker;

import org.junit.runner.Description;
import org.junit.runner.JUnitCore;
import org.junit.runner.Result;
import org.junit.runner.notification.Failure;
import org.junit.runner.notification.RunListener;

/**
 * Runs JUnit test classes and prints one line per test ({@code PASS Class.method},
 * {@code FAIL Class.method: message} or {@code SKIP ...}), then {@code TOTAL run failed}, so
 * that pytest (tests/android) can report every JUnit test as its own item.
 *
 * <p>Usage: {@code java -cp ... org.tfedge.unpacker.TestReport Class...}
 */
public final class TestReport {
    private TestReport() {}

    public static void main(String[] args) throws ClassNotFoundException {
        Class<?>[] classes = new Class<?>[args.length];
        for (int i = 0; i < args.length; i++) {
            classes[i] = Class.forName(args[i]);
        }
        JUnitCore core = new JUnitCore();
        core.addListener(new RunListener() {
            private boolean failed;

            @Override
            public void testStarted(Description d) {
                failed = false;
            }

            @Override
            public void testFailure(Failure f) {
                failed = true;
                String msg = String.valueOf(f.getMessage()).replace('\n', ' ');
                System.out.println("FAIL " + name(f.getDescription()) + ": " + msg);
            }

            @Override
            public void testAssumptionFailure(Failure f) {
                failed = true;
                System.out.println("SKIP " + name(f.getDescription()) + ": " + f.getMessage());
            }

            @Override
            public void testIgnored(Description d) {
                System.out.println("SKIP " + name(d) + ": ignored");
            }

            @Override
            public void testFinished(Description d) {
                if (!failed) {
                    System.out.println("PASS " + name(d));
                }
            }
        });
        Result r = core.run(classes);
        System.out.println("TOTAL " + r.getRunCount() + " " + r.getFailureCount());
        System.exit(r.wasSuccessful() ? 0 : 1);
    }

    static String name(Description d) {
        String c = d.getClassName();
        return c.substring(c.lastIndexOf('.') + 1) + "." + d.getMethodName();
    }
}
