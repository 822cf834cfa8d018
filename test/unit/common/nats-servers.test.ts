import { natsServerOptions } from '../../../common/nats-servers';

describe('NATS server URLs with credentials', () => {
  it('moves user and password out of the URLs into connect options', () => {
    expect(
      natsServerOptions(['nats://gateway:s3cr%40t@nats.daftka.svc:4222', 'nats://gateway:s3cr%40t@nats-1:4222']),
    ).toEqual({
      servers: ['nats://nats.daftka.svc:4222', 'nats://nats-1:4222'],
      user: 'gateway',
      pass: 's3cr@t',
    });
  });

  it('leaves URLs without credentials alone', () => {
    expect(natsServerOptions(['nats://127.0.0.1:4222'])).toEqual({ servers: ['nats://127.0.0.1:4222'] });
    expect(natsServerOptions(['127.0.0.1:4222'])).toEqual({ servers: ['127.0.0.1:4222'] });
  });
});
