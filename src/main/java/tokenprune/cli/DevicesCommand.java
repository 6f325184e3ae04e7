package tokenprune.cli;

import java.io.PrintStream;
import java.util.List;
import java.util.Set;

import tokenprune.device.Devices;

/** {@code devices}: which devices can run here, and why not. */
final class DevicesCommand {
    private DevicesCommand() {
    }

    static void run(List<String> argv, PrintStream out) {
        Args.parse(argv, Set.of(), Set.of());
        out.println("device avail reason");
        for (Devices.Availability a : Devices.probe()) out.println(a);
        String auto = Devices.probe().get(0).available() ? "cuda" : "cpu";
        out.println("auto picks: " + auto + " (override with -D" + Devices.PROPERTY + "=... or " + Devices.ENVIRONMENT + ")");
    }
}
