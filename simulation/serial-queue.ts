/**
 * One job at a time, in order: a device host's devices share one model instance and train on it
 * in turn. A job whose attempt was superseded while it waited (its signal aborted) is skipped
 * when its turn comes, so the next attempt's devices do not wait behind work nobody will use.
 */
export function serialQueue(): <T>(job: () => Promise<T>, signal?: AbortSignal) => Promise<T> {
  let chain: Promise<unknown> = Promise.resolve();
  return <T>(job: () => Promise<T>, signal?: AbortSignal): Promise<T> => {
    const run = (): Promise<T> => {
      signal?.throwIfAborted();
      return job();
    };
    const next = chain.then(run, run);
    chain = next.catch(() => undefined);
    return next;
  };
}
