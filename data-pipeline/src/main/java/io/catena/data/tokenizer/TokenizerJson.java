package io.catena.data.tokenizer;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.catena.model.data.HuggingFaceTokenizerJson;

import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * Reads and writes HuggingFace {@code tokenizer.json} files for byte-level BPE (the GPT-2 layout:
 * ByteLevel pre-tokenizer, BPE model, ByteLevel decoder). Files written here load in HuggingFace
 * {@code tokenizers} (Rust/Python) and DJL; files from GPT-2-style models load here.
 */
public final class TokenizerJson {

    private static final ObjectMapper MAPPER = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private TokenizerJson() {
    }

    /** Canonical tokenizer.json text (same tokenizer -> same bytes). */
    public static String toJson(ByteLevelBpe t) {
        List<HuggingFaceTokenizerJson.Special> specials = new ArrayList<>();
        for (int id : t.specialIds()) {
            specials.add(new HuggingFaceTokenizerJson.Special(id, t.token(id)));
        }
        Map<String, Integer> vocab = new java.util.LinkedHashMap<>();
        for (int id = 0; id < t.vocabSize(); id++) {
            if (!t.isSpecial(id)) {
                vocab.put(t.token(id), id);
            }
        }
        List<String> merges = new ArrayList<>();
        for (int r = 0; r < t.mergeCount(); r++) {
            merges.add(t.token(t.mergeLeft(r)) + " " + t.token(t.mergeRight(r)));
        }
        return HuggingFaceTokenizerJson.write(specials, vocab, merges);
    }

    /**
     * Parses a byte-level BPE tokenizer.json.
     *
     * @param where     the file's name, for error messages
     * @param eosToken  content of the EOS special token (usually {@link ByteLevelBpe#EOS})
     * @param padToken  content of the PAD special token; if the file has no such token, PAD is absent
     * @throws IllegalArgumentException naming the file and the offending setting if it is not a byte-level BPE
     */
    public static ByteLevelBpe parse(String json, String where, String eosToken, String padToken) {
        JsonNode root;
        try {
            root = MAPPER.readTree(json);
        } catch (JsonProcessingException e) {
            throw new IllegalArgumentException(where + " is not valid JSON (" + e.getOriginalMessage() + " at line "
                    + e.getLocation().getLineNr() + "); expected a HuggingFace tokenizer.json", e);
        }
        JsonNode model = root.path("model");
        String type = model.path("type").asText("BPE");
        if (!"BPE".equals(type) || !model.has("vocab")) {
            throw bad(where, "model.type", "BPE with a vocab", model.path("type").toString());
        }
        if (!isByteLevel(root.path("pre_tokenizer"))) {
            throw bad(where, "pre_tokenizer", "{\"type\":\"ByteLevel\",\"use_regex\":true,\"add_prefix_space\":false}",
                    root.path("pre_tokenizer").toString());
        }
        if (model.path("byte_fallback").asBoolean(false)) {
            throw bad(where, "model.byte_fallback", "false (byte-level BPE)", "true");
        }
        for (String f : new String[] {"continuing_subword_prefix", "end_of_word_suffix"}) {
            String v = model.path(f).isNull() ? "" : model.path(f).asText("");
            if (!v.isEmpty()) {
                throw bad(where, "model." + f, "null or \"\"", "\"" + v + "\"");
            }
        }
        JsonNode norm = root.path("normalizer");
        if (!norm.isMissingNode() && !norm.isNull()) {
            throw bad(where, "normalizer", "null (catena normalizes text itself, see --normalize)", norm.toString());
        }
        int max = -1;
        List<String[]> entries = new ArrayList<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = model.path("vocab").fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            entries.add(new String[] {e.getKey(), String.valueOf(e.getValue().asInt()), "0"});
            max = Math.max(max, e.getValue().asInt());
        }
        for (JsonNode a : root.path("added_tokens")) {
            entries.add(new String[] {a.path("content").asText(), String.valueOf(a.path("id").asInt()),
                    a.path("special").asBoolean(false) ? "1" : "0"});
            max = Math.max(max, a.path("id").asInt());
        }
        String[] tokens = new String[max + 1];
        boolean[] special = new boolean[max + 1];
        for (String[] e : entries) {
            int id = Integer.parseInt(e[1]);
            if (id < 0) {
                throw bad(where, "model.vocab['" + e[0] + "']", "an id >= 0", e[1]);
            }
            if (tokens[id] != null && !tokens[id].equals(e[0])) {
                throw bad(where, "id " + id, "one token per id", "'" + tokens[id] + "' and '" + e[0] + "'");
            }
            tokens[id] = e[0];
            special[id] |= e[2].equals("1");
        }
        for (int id = 0; id <= max; id++) {
            if (tokens[id] == null) {
                throw bad(where, "model.vocab", "contiguous ids 0.." + max, "no token with id " + id);
            }
        }
        java.util.HashMap<String, Integer> ids = new java.util.HashMap<>();
        for (int id = 0; id <= max; id++) {
            ids.put(tokens[id], id);
        }
        JsonNode mergesNode = model.path("merges");
        int[] left = new int[mergesNode.size()];
        int[] right = new int[mergesNode.size()];
        int r = 0;
        for (JsonNode m : mergesNode) {
            String a;
            String b;
            if (m.isArray()) {
                a = m.get(0).asText();
                b = m.get(1).asText();
            } else {
                String s = m.asText();
                int sp = s.indexOf(' ');
                if (sp <= 0 || s.indexOf(' ', sp + 1) >= 0) {
                    throw bad(where, "model.merges[" + r + "]", "\"<left> <right>\"", "\"" + s + "\"");
                }
                a = s.substring(0, sp);
                b = s.substring(sp + 1);
            }
            Integer ia = ids.get(a);
            Integer ib = ids.get(b);
            if (ia == null || ib == null) {
                throw bad(where, "model.merges[" + r + "]", "both parts in the vocab", "'" + a + "' + '" + b + "'");
            }
            left[r] = ia;
            right[r] = ib;
            r++;
        }
        String pad = ids.containsKey(padToken) && special[ids.get(padToken)] ? padToken : null;
        try {
            return new ByteLevelBpe(tokens, special, left, right, eosToken, pad);
        } catch (IllegalArgumentException e) {
            throw new IllegalArgumentException(where + ": " + e.getMessage(), e);
        }
    }

    private static boolean isByteLevel(JsonNode pre) {
        if ("ByteLevel".equals(pre.path("type").asText())) {
            return pre.path("use_regex").asBoolean(true) && !pre.path("add_prefix_space").asBoolean(false);
        }
        return false;
    }

    private static IllegalArgumentException bad(String where, String setting, String expected, String found) {
        return new IllegalArgumentException(where + ": " + setting + " is " + found + ", expected " + expected
                + ". Catena reads byte-level BPE tokenizers (GPT-2 layout); pass such a tokenizer.json to --tokenizer,"
                + " or train one with --tokenizer train:<vocab>.");
    }
}
