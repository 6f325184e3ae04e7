package tokenprune.cli;

import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import tokenprune.device.DeviceException;

/**
 * {@code java -jar tokenprune.jar COMMAND [options]}. Bad input prints one line on stderr and
 * exits with 2 (a stack trace too with --verbose); a device failure exits with 1.
 */
public final class Main {
    static final String USAGE = String.join("\n",
            "usage: java -jar tokenprune.jar COMMAND [options]",
            "  select   --method divprune (--keep K | --ratio R) --input X.npy --output Y.npy",
            "           [--device auto|cuda|sim|cpu] [--order sorted|selection] [--official-compat]",
            "  select   --method scores --scores S.npy (--keep K | --ratio R | --threshold T) --output Y.npy",
            "  select   --method fastervlm --queries Q.npy --keys K.npy (--keep T | --ratio R) --output Y.npy",
            "  select   --method dart --keys K.npy --hidden H.npy --image-start S --image-length L [--pivots-image 4]",
            "           [--pivots-text 4] [--per-pivot 16] [--official-compat] [--keep-list L.npy] --output Y.npy",
            "  select   --method transprune --u U.npy --v V.npy (--queries Q.npy --keys K.npy | --ttv-only)",
            "           --image-start S --image-length L --keep K --output Y.npy   (one pruning stage)",
            "  kv-evict [--device ...] [--layers 32] [--kv-heads 8] [--head-dim 128] [--block 16] [--budget 1024] [--prompt 2048[,L2,...]]",
            "           [--steps 256] [--batch 1] [--layout flashattention|flashinfer|legacy] [--dtype f16|bf16|f32] [--seed 1] [--check]",
            "           [--score v_over_k|inv_k|v|k_plus_v|random] [--head-agg mean_of_ratios|ratio_of_means] [--window global|local[:K]]",
            "           [--victim argmin|argmax|random] [--layer-agg mean|layer0] [--preset pe|streaming (StreamingLLM paged: recent prefill, evict block 1)]",
            "           [--policy pe|h2o|a2sf|streaming|block-h2o|block-a2sf|block-streaming (default pe: PagedEviction, the options above)]",
            "           h2o/a2sf/streaming (token eviction, compact to C at kv_len >= C + slack): [--slack B] [--sinks 0 (streaming 4)]",
            "             [--recent (C - sinks)/2 (streaming C - sinks)] [--hh C - sinks - recent] [--alpha 0.95 (a2sf)] [--rope-base X (streaming)]",
            "           block-h2o/block-a2sf/block-streaming (one block per step): [--sinks B] [--recent B] (tokens, whole blocks) [--alpha 0.95]",
            "           score policies (h2o, a2sf, block-h2o, block-a2sf): [--q-heads 4 x kv-heads] (one random query row per sequence and layer)",
            "           per step: append, score update (synthetic LSE ln(kv_len) + 1/2), evict (attend-then-evict); prefill keeps a prompt",
            "           L <= C + slack - 1 whole, else sinks + the last C - sinks (token), PE's C + L mod B (block); no prompt scoring",
            "           synthetic prefill + decode on random K/V (small defaults on sim/cpu); --check compares with the reference",
            "  devices  which devices can run here, and why not",
            "  demo     [--device ...]  DivPrune on built-in sample tokens, checked against the reference",
            "  bench    [--device ...] [--ops cosine,divprune,topk,gather,fastervlm,dart,transprune] [--n 576,2340,8192]",
            "           [--d 1024,4096] [--b 1,16] [--dtype f16,f32]",
            "           [--reps 20] [--warmup 3] [--csv bench.csv] [--profile (cuProfilerStart/Stop around timed runs)]",
            "           [--ops ...,kv-score,kv-decide (not in the default list; N = context length, default 4096,32768,131072 and --b 1,64 on a GPU)]",
            "  options for every command: --verbose (stack traces on errors)");

    private Main() {
    }

    public static void main(String[] argv) {
        System.exit(run(argv, System.out, System.err));
    }

    /** Runs a command; returns the exit code (0 ok, 1 device failure, 2 bad input). */
    public static int run(String[] argv, PrintStream out, PrintStream err) {
        List<String> args = new ArrayList<>(Arrays.asList(argv));
        boolean verbose = args.remove("--verbose");
        if (args.isEmpty() || args.get(0).equals("--help") || args.get(0).equals("help")) {
            (args.isEmpty() ? err : out).println(USAGE);
            return args.isEmpty() ? 2 : 0;
        }
        String command = args.remove(0);
        try {
            switch (command) {
                case "select" -> SelectCommand.run(args, out);
                case "devices" -> DevicesCommand.run(args, out);
                case "demo" -> DemoCommand.run(args, out);
                case "bench" -> BenchCommand.run(args, out);
                case "kv-evict" -> KvEvictCommand.run(args, out);
                default -> throw new UsageException("unknown command '" + command + "'; expected select, kv-evict, devices, demo or bench");
            }
            return 0;
        } catch (UsageException | IllegalArgumentException | IOException e) {
            err.println("tokenprune " + command + ": " + e.getMessage());
            if (verbose) e.printStackTrace(err);
            return 2;
        } catch (KvEvictCommand.CheckFailed e) {
            err.println("tokenprune " + command + ": check failed: " + e.getMessage());
            if (verbose) e.printStackTrace(err);
            return 1;
        } catch (DeviceException e) {
            err.println("tokenprune " + command + ": device error: " + e.getMessage());
            if (verbose) e.printStackTrace(err);
            return 1;
        }
    }
}
