/**
 * The updates received and not yet taken by the application: a FIFO with one
 * waiting reader, ended by an error (after everything queued before it) or by
 * `end()`.
 */

export type Taken<T> = { done: false; value: T } | { done: true; value: undefined };

export class UpdateQueue<T> {
  private items: T[] = [];
  private head = 0;
  private waiter: ((taken: Taken<T>) => void) | null = null;
  private failWaiter: ((error: Error) => void) | null = null;
  private ended = false;
  private error: Error | null = null;

  get length(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    if (this.ended || this.error) return;
    const waiter = this.waiter;
    if (waiter !== null && this.length === 0) {
      this.waiter = this.failWaiter = null;
      waiter({ done: false, value: item });
      return;
    }
    this.items.push(item);
  }

  /** No more items: a waiting or later `take` ends once the queue is empty. */
  end(): void {
    this.ended = true;
    this.wakeEmpty();
  }

  /** `take` throws `error` once what is queued now has been taken. */
  fail(error: Error): void {
    if (this.ended || this.error) return;
    this.error = error;
    this.wakeEmpty();
  }

  /** Drop everything queued (the client was closed). */
  clear(): void {
    this.items = [];
    this.head = 0;
  }

  take(): Promise<Taken<T>> {
    if (this.length > 0) {
      const item = this.items[this.head] as T;
      this.items[this.head] = undefined as T;
      this.head += 1;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items = this.items.slice(this.head);
        this.head = 0;
      }
      return Promise.resolve({ done: false, value: item });
    }
    if (this.error) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve({ done: true, value: undefined });
    if (this.waiter !== null) return Promise.reject(new Error("updates are already being awaited"));
    return new Promise((resolve, reject) => {
      this.waiter = resolve;
      this.failWaiter = reject;
    });
  }

  private wakeEmpty(): void {
    if (this.length > 0 || this.waiter === null) return;
    const waiter = this.waiter;
    const failWaiter = this.failWaiter;
    this.waiter = this.failWaiter = null;
    if (this.error && failWaiter) failWaiter(this.error);
    else waiter({ done: true, value: undefined });
  }
}
