import { BrokerUnavailableError, type Broker, type TopicPosition } from '../broker/broker.js'
import { FRT_ERR_INVALID_TOPIC, FRT_ERR_UNKNOWN_EVENT } from '../errors.js'
import type { CompiledRoute } from '../messages/compile.js'
import { MAX_TOPIC_LENGTH } from '../protocol/frames.js'
import type { RealtimeMetrics } from '../telemetry/metrics.js'
import { endSpanWithError, startPublishSpan, traceparentOf } from '../telemetry/tracing.js'

/** Publishes a route's declared event on a topic; resolves with the offset the broker gave it. */
export type Publish = (route: CompiledRoute, topic: string, event: string, data: unknown) => Promise<TopicPosition>

/**
 * The publish pipeline: the event is checked against the route's declaration and serialized
 * once, here; every node and socket passes on these same bytes. A PRODUCER span carries the
 * trace through the broker.
 */
export function createPublisher (broker: Broker, metrics: RealtimeMetrics): Publish {
  return async (route, topic, event, data) => {
    const compiled = route.events.get(event)
    if (compiled === undefined) throw new FRT_ERR_UNKNOWN_EVENT(event, route.url)
    if (typeof topic !== 'string' || topic.length === 0 || topic.length > MAX_TOPIC_LENGTH) {
      throw new FRT_ERR_INVALID_TOPIC(JSON.stringify(topic))
    }
    const span = startPublishSpan(topic, event)
    const message = { event, data: compiled.serialize(data), traceparent: traceparentOf(span), publishedAt: Date.now() }
    try {
      const position = await broker.publish(topic, message)
      metrics.brokerPublished(broker.name, 'ok')
      span.end()
      return position
    } catch (err) {
      metrics.brokerPublished(broker.name, 'error')
      endSpanWithError(span, err instanceof BrokerUnavailableError ? 'UNAVAILABLE' : 'PUBLISH_FAILED')
      throw err
    }
  }
}
