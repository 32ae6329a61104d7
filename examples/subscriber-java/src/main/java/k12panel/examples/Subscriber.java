/*
 * panel-subscriber in Java: another service consuming the public topics.
 *
 * It joins a consumer group on panel.people.events and panel.assets.events, keeps a copy of
 * every Person and Asset, and prints one line per change it applies (the same lines as the C
 * and Python examples). Delivery is at least once, so it applies an event only when its
 * event_id is new and its version is newer than the copy's (docs/events.md).
 *
 *   examples/subscriber-java/build.sh target
 *   PANEL_KAFKA_BROKERS=127.0.0.1:9092 PANEL_SUBSCRIBER_GROUP=my-service \
 *       java -cp 'target/classes:target/lib/*' k12panel.examples.Subscriber
 *
 * A new group starts from the beginning of the topics (a full replay rebuilds the copy); a
 * known group continues where it committed.
 */
package k12panel.examples;

import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;

import com.google.protobuf.InvalidProtocolBufferException;
import k12panel.panel.v1.Asset;
import k12panel.panel.v1.AssetChanged;
import k12panel.panel.v1.Envelope;
import k12panel.panel.v1.MergedPerson;
import k12panel.panel.v1.PersonChanged;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class Subscriber {
    private static final int SEEN_IDS = 100_000; // event ids remembered for de-duplication

    /** "person:<id>" / "asset:<id>" -> the version applied. */
    private final Map<String, Long> versions = new HashMap<>();
    /** Event ids already applied, oldest first, bounded. */
    private final Map<String, Boolean> seen = new LinkedHashMap<>() {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, Boolean> eldest) {
            return size() > SEEN_IDS;
        }
    };

    private boolean isNewEvent(String eventId) {
        return seen.put(eventId, Boolean.TRUE) == null;
    }

    private boolean isNewer(String key, long version) {
        if (version <= versions.getOrDefault(key, 0L))
            return false; // a duplicate or an older copy: the entity is already newer here
        versions.put(key, version);
        return true;
    }

    /** An enum constant's name without its prefix (CHANGE_KIND_CREATED -> CREATED). */
    private static String shortName(Enum<?> value, String prefix) {
        String name = value.name();
        return name.startsWith(prefix) ? name.substring(prefix.length()) : name;
    }

    /**
     * A text value between double quotes, so that one event is always one line: backslash and
     * quote escaped, control characters as \\n, \\r, \\t or \\u00XX (as the other examples print).
     */
    static String quoted(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (int i = 0; i < text.length(); i++) {
            char c = text.charAt(i);
            if (c == '"' || c == '\\')
                out.append('\\').append(c);
            else if (c == '\n')
                out.append("\\n");
            else if (c == '\r')
                out.append("\\r");
            else if (c == '\t')
                out.append("\\t");
            else if (c < 0x20 || c == 0x7f)
                out.append(String.format("\\u%04x", (int) c));
            else
                out.append(c);
        }
        return out.append('"').toString();
    }

    private static String changed(List<String> names) {
        return names.isEmpty() ? "-" : String.join(",", names);
    }

    /** The line to print for an Envelope, or null when it changes nothing here. */
    String apply(Envelope env) {
        if (!isNewEvent(env.getEventId()))
            return null;
        switch (env.getPayloadCase()) {
        case PERSON_CHANGED: {
            PersonChanged pc = env.getPersonChanged();
            MergedPerson p = pc.getPerson();
            if (!isNewer("person:" + p.getPersonId(), p.getVersion()))
                return null;
            return String.format("person %s %s v%d tenant=%s email=%s name=%s changed=%s",
                    p.getPersonId(), shortName(pc.getKind(), "CHANGE_KIND_"), p.getVersion(),
                    env.getTenantId(), p.getFields().getEmailNormalized(),
                    quoted(p.getFields().getDisplayName()), changed(pc.getChangedFieldsList()));
        }
        case ASSET_CHANGED: {
            AssetChanged ac = env.getAssetChanged();
            Asset a = ac.getAsset();
            if (!isNewer("asset:" + a.getAssetId(), a.getVersion()))
                return null;
            return String.format("asset %s %s v%d tenant=%s serial=%s model=%s in_google=%s changed=%s",
                    a.getAssetId(), shortName(ac.getKind(), "ASSET_CHANGE_KIND_"), a.getVersion(),
                    env.getTenantId(), a.getDevice().getSerialNumber(), quoted(a.getDevice().getModel()),
                    a.getInGoogle() ? "true" : "false", changed(ac.getChangedFieldsList()));
        }
        default:
            return null; // another payload: not for this subscriber
        }
    }

    private static String env(String name, String fallback) {
        String v = System.getenv(name);
        return v == null || v.isEmpty() ? fallback : v;
    }

    public static void main(String[] args) {
        if (args.length > 0) {
            System.out.println("Usage: Subscriber (configured by PANEL_KAFKA_BROKERS, "
                    + "PANEL_SUBSCRIBER_GROUP, PANEL_SUBSCRIBER_MAX_EVENTS)");
            System.exit(args[0].equals("--help") ? 0 : 2);
        }
        long maxEvents;
        try {
            maxEvents = Long.parseLong(env("PANEL_SUBSCRIBER_MAX_EVENTS", "0"));
        } catch (NumberFormatException e) {
            System.err.println("subscriber: PANEL_SUBSCRIBER_MAX_EVENTS must be an integer");
            System.exit(2);
            return;
        }
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, env("PANEL_KAFKA_BROKERS", "127.0.0.1:9092"));
        props.put(ConsumerConfig.GROUP_ID_CONFIG, env("PANEL_SUBSCRIBER_GROUP", "panel-subscriber-example"));
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        // Commit after applying each batch: at least once.
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        Subscriber copy = new Subscriber();
        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props);
        Thread mainThread = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            consumer.wakeup(); // SIGTERM / Ctrl-C: leave poll() and close cleanly
            try {
                mainThread.join(10_000);
            } catch (InterruptedException ignored) {
                Thread.currentThread().interrupt();
            }
        }));
        long applied = 0;
        try {
            consumer.subscribe(List.of("panel.people.events", "panel.assets.events"));
            while (maxEvents == 0 || applied < maxEvents) {
                ConsumerRecords<byte[], byte[]> records = consumer.poll(Duration.ofMillis(500));
                for (ConsumerRecord<byte[], byte[]> r : records) {
                    Envelope env;
                    try {
                        env = Envelope.parseFrom(r.value() == null ? new byte[0] : r.value());
                    } catch (InvalidProtocolBufferException e) {
                        System.err.printf("subscriber: skipping an undecodable event at %s-%d@%d: %s%n",
                                r.topic(), r.partition(), r.offset(), e.getMessage());
                        continue;
                    }
                    if (env.getSchemaVersion() > 1)
                        continue; // a schema version this code does not know
                    String line = copy.apply(env);
                    if (line != null) {
                        System.out.println(line);
                        System.out.flush();
                        applied++;
                    }
                }
                if (!records.isEmpty())
                    consumer.commitSync();
            }
        } catch (WakeupException stopping) {
            // asked to stop
        } finally {
            consumer.close();
        }
    }
}
