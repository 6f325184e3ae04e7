package tokenprune.kernels;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;

import org.junit.jupiter.api.Test;

import tokenprune.device.ArgType;
import tokenprune.device.KernelSpec;

/**
 * Kernel parameters are typed only by the kernel image: JCuda cannot tell an int from a pointer.
 * This test holds every Java launch signature against (a) the PTX nvcc emitted (parameter count
 * and 32- vs 64-bit width) and (b) the CUDA source's parameter list (pointer vs value). No GPU.
 */
class KernelSignatureTest {
    private static final Path PTX = Path.of("target/ptx/tokenprune.ptx");
    private static final Path CUDA_SOURCES = Path.of("src/main/cuda");

    @Test
    void everyJavaSignatureMatchesThePtx() throws IOException {
        Map<String, List<String>> ptx = ptxEntries(Files.readString(PTX));
        assertFalse(ptx.isEmpty(), "no .entry found in " + PTX);
        for (KernelSpec spec : KernelCatalog.all()) {
            List<String> params = ptx.get(spec.name());
            assertTrue(params != null, spec.name() + " is not in the PTX; entries: " + ptx.keySet());
            List<String> expected = spec.params().stream().map(ArgType::ptxType).toList();
            List<String> actual = params.stream().map(t -> t.replace("s32", "u32").replace("s64", "u64").replace("b32", "u32")
                    .replace("b64", "u64")).toList();
            assertEquals(expected, actual, "PTX parameter widths of " + spec.name());
        }
    }

    @Test
    void everyJavaSignatureMatchesTheCudaSource() throws IOException {
        Map<String, List<ArgType>> source = new HashMap<>();
        try (Stream<Path> files = Files.list(CUDA_SOURCES)) {
            for (Path f : files.filter(p -> p.toString().endsWith(".cu")).toList()) source.putAll(sourceEntries(Files.readString(f)));
        }
        for (KernelSpec spec : KernelCatalog.all()) {
            assertTrue(source.containsKey(spec.name()), spec.name() + " has no extern \"C\" __global__ definition in " + CUDA_SOURCES);
            assertEquals(source.get(spec.name()), spec.params(), "C parameter types of " + spec.name());
        }
        // and no kernel in the sources is missing from the catalog (an unlaunched kernel is dead code)
        List<String> catalogued = KernelCatalog.all().stream().map(KernelSpec::name).toList();
        for (String name : source.keySet()) assertTrue(catalogued.contains(name), name + " is defined but has no Java launcher in KernelCatalog");
    }

    @Test
    void theParsersSeeWhatTheyShould() {
        String ptx = ".visible .entry k1(\n\t.param .u64 k1_param_0,\n\t.param .u32 k1_param_1,\n\t.param .f32 k1_param_2\n)\n{\n}\n"
                + ".visible .entry k2()\n{\n}\n";
        Map<String, List<String>> p = ptxEntries(ptx);
        assertEquals(List.of("u64", "u32", "f32"), p.get("k1"));
        assertEquals(List.of(), p.get("k2"));
        String cu = "extern \"C\" __global__ void __launch_bounds__(256)\nk3(const __half* __restrict__ x, long long s,\n int n, float e, int* out) {}";
        assertEquals(List.of(ArgType.PTR, ArgType.I64, ArgType.I32, ArgType.F32, ArgType.PTR), sourceEntries(cu).get("k3"));
    }

    static Map<String, List<String>> ptxEntries(String ptx) {
        Map<String, List<String>> out = new HashMap<>();
        Matcher m = Pattern.compile("\\.entry\\s+(\\w+)\\s*\\(([^)]*)\\)").matcher(ptx);
        while (m.find()) {
            List<String> types = new ArrayList<>();
            Matcher p = Pattern.compile("\\.param\\s+\\.(\\w+)").matcher(m.group(2));
            while (p.find()) types.add(p.group(1));
            out.put(m.group(1), types);
        }
        return out;
    }

    static Map<String, List<ArgType>> sourceEntries(String source) {
        Map<String, List<ArgType>> out = new HashMap<>();
        Matcher m = Pattern.compile("extern\\s+\"C\"\\s+__global__\\s+void\\s+(?:__launch_bounds__\\([^)]*\\)\\s+)?(\\w+)\\s*\\(([^)]*)\\)").matcher(source);
        while (m.find()) {
            List<ArgType> types = new ArrayList<>();
            for (String param : m.group(2).split(",")) {
                String p = param.trim();
                if (p.isEmpty()) continue;
                String type = p.substring(0, p.lastIndexOf(' ')).replace("__restrict__", "").replace("const", "").trim();
                if (type.endsWith("*")) types.add(ArgType.PTR);
                else if (type.equals("int") || type.equals("unsigned") || type.equals("unsigned int")) types.add(ArgType.I32);
                else if (type.equals("long long") || type.equals("size_t") || type.equals("unsigned long long")) types.add(ArgType.I64);
                else if (type.equals("float")) types.add(ArgType.F32);
                else throw new AssertionError("unsupported kernel parameter type '" + type + "' in " + m.group(1));
            }
            out.put(m.group(1), types);
        }
        return out;
    }
}
