"""Bad-input fixtures for test/reliability/*.test.ts, written at test time into a temp folder (argv[1]).

Everything is small (the biggest file is the 10 MB text row) and derived from fixtures/rlhf-v-sample.parquet
(argv[2]), so no binary fixture is committed. Prints nothing on success.
"""
import io
import json
import os
import struct
import sys
import zlib

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

out, sample = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
p = lambda name: os.path.join(out, name)  # noqa: E731

data = open(sample, 'rb').read()
footer_len = struct.unpack('<I', data[-8:-4])[0]

# 1. Broken files: cut in the data pages, cut in the footer, data cut but footer kept, empty, not parquet.
open(p('truncated-data.parquet'), 'wb').write(data[: len(data) // 2])
open(p('truncated-footer.parquet'), 'wb').write(data[: len(data) - footer_len // 2])
open(p('data-cut-footer-kept.parquet'), 'wb').write(data[: len(data) // 2] + data[-(footer_len + 8):])
open(p('empty.parquet'), 'wb').write(b'')
open(p('text.parquet'), 'wb').write(b'conversations,chosen,rejected\nhello,a,b\n')

table = pq.read_table(sample)
schema = table.schema
pq.write_table(table.slice(0, 0), p('zero-rows.parquet'))

image_bytes = table.column('images')[0].as_py()[0]['bytes']
turn = pa.struct([('from', pa.string()), ('value', pa.string())])
image = pa.struct([('bytes', pa.binary()), ('path', pa.string())])


def row(q='<image>\nWhat is shown?', chosen='A butterfly on a leaf.', rejected='A cat on a sofa.', images=None):
    return {
        'conversations': [{'from': 'human', 'value': q}],
        'chosen': {'from': 'gpt', 'value': chosen},
        'rejected': {'from': 'gpt', 'value': rejected},
        'images': images if images is not None else [{'bytes': image_bytes, 'path': None}],
    }


def write(name, rows, **kw):
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), p(name), **kw)


# 3. Wrong types: `chosen` an integer column, `conversations` a string column (every row).
pq.write_table(
    pa.table({
        'conversations': pa.array([[{'from': 'human', 'value': '<image>\nQ?'}]] * 3, pa.list_(turn)),
        'chosen': pa.array([1, 2, 3], pa.int64()),
        'rejected': pa.array([{'from': 'gpt', 'value': 'no'}] * 3, turn),
        'images': pa.array([[{'bytes': image_bytes, 'path': None}]] * 3, pa.list_(image)),
    }),
    p('chosen-int.parquet'),
)
pq.write_table(
    pa.table({
        'conversations': pa.array(['<image>\nQ?'] * 3, pa.string()),
        'chosen': pa.array([{'from': 'gpt', 'value': 'yes'}] * 3, turn),
        'rejected': pa.array([{'from': 'gpt', 'value': 'no'}] * 3, turn),
        'images': pa.array([[{'bytes': image_bytes, 'path': None}]] * 3, pa.list_(image)),
    }),
    p('conversations-string.parquet'),
)

# Non-UTF-8 bytes in a string column: write a marker uncompressed and plain, then patch it to Latin-1 bytes
# (what a mis-encoded export holds). No statistics, no page checksums, so the patch is the only change.
MARK = b'@@NONUTF8@@'
LATIN1 = 'caf\xe9 ol\xe9!!!'.encode('latin-1')
assert len(MARK) == len(LATIN1)
write('non-utf8.parquet', [row(chosen='Before ' + MARK.decode() + ' after.'), row()], compression='none', use_dictionary=False, write_statistics=False)
raw = open(p('non-utf8.parquet'), 'rb').read()
assert raw.count(MARK) == 1, raw.count(MARK)
open(p('non-utf8.parquet'), 'wb').write(raw.replace(MARK, LATIN1))

# A 10 MB text field (row 0), then a normal row.
write('huge-text.parquet', [row(chosen='word ' * (2 * 1024 * 1024)), row()])

# 5. Images.
def png(width, height, mode='RGB'):
    b = io.BytesIO()
    Image.new(mode, (width, height), (200, 30, 30) if mode == 'RGB' else 0).save(b, 'PNG')
    return b.getvalue()


def bomb_png(side):
    """A side x side 1-bit all-zero PNG, streamed (a few dozen KB on disk, side*side pixels decoded)."""
    def chunk(kind, body):
        return struct.pack('>I', len(body)) + kind + body + struct.pack('>I', zlib.crc32(kind + body) & 0xFFFFFFFF)
    z = zlib.compressobj(9)
    line = b'\x00' * (1 + (side + 7) // 8)
    idat = b''.join(z.compress(line) for _ in range(side)) + z.flush()
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', side, side, 1, 0, 0, 0, 0)) + chunk(b'IDAT', idat) + chunk(b'IEND', b'')


bomb = bomb_png(20000)
thin = png(50000, 1)
open(p('bomb.png'), 'wb').write(bomb)
open(p('thin.png'), 'wb').write(thin)
write('images.parquet', [
    row(images=[{'bytes': bomb, 'path': 'bomb.png'}]),
    row(images=[{'bytes': thin, 'path': 'thin.png'}]),
    row(),
])

# Media folder, a folder outside it (a readable PNG and a secret text file), a symlink inside pointing out.
media, outside = p('media'), p('outside')
os.makedirs(media, exist_ok=True)
os.makedirs(outside, exist_ok=True)
open(os.path.join(media, 'ok.png'), 'wb').write(png(64, 48))
open(os.path.join(outside, 'outside.png'), 'wb').write(png(40, 40, 'L'))
open(os.path.join(outside, 'secret.txt'), 'w').write('TOP-SECRET-CONTENT-0xC0FFEE\n')
if not os.path.lexists(os.path.join(media, 'link.png')):
    os.symlink(os.path.join(outside, 'outside.png'), os.path.join(media, 'link.png'))
if not os.path.lexists(os.path.join(media, 'link-secret.png')):
    os.symlink(os.path.join(outside, 'secret.txt'), os.path.join(media, 'link-secret.png'))


def jrow(path, q='<image>\nWhat is shown?'):
    return {
        'conversations': [{'from': 'human', 'value': q}],
        'chosen': {'from': 'gpt', 'value': 'A red square.'},
        'rejected': {'from': 'gpt', 'value': 'A blue circle.'},
        'images': [path],
    }


# Image paths a dataset may hold, as a JSONL file in the media folder (relative paths resolve against it).
paths = [
    'ok.png',                                  # 0 normal
    '../outside/outside.png',                  # 1 escapes the media folder: read (as LLaMA-Factory does), never written to
    '../outside/secret.txt',                   # 2 escapes, and is not an image
    os.path.join(outside, 'outside.png'),      # 3 absolute
    'ok\x00.png',                              # 4 NUL byte
    'link.png',                                # 5 symlink to a PNG outside
    'link-secret.png',                         # 6 symlink to a text file outside
    '../' * 16 + outside.lstrip('/') + '/secret.txt',  # 7 climbs to the root, then down to the secret
]
with open(os.path.join(media, 'paths.jsonl'), 'w') as f:
    for i, x in enumerate(paths):
        f.write(json.dumps(jrow(x, q=f'<image>\nWhat is shown? ({i})')) + '\n')
# The same paths in parquet `images.path`, without bytes (a path-only image) and with bytes (the path is unused).
write('paths.parquet', [row(q=f'<image>\nWhat is shown? ({i})', images=[{'bytes': None, 'path': x}]) for i, x in enumerate(paths)]
      + [row(q=f'<image>\nWhat is shown? ({i + len(paths)})', images=[{'bytes': image_bytes, 'path': x}]) for i, x in enumerate(paths)])

# Non-UTF-8 bytes in a JSONL line (row 0), a valid row after it.
with open(os.path.join(media, 'non-utf8.jsonl'), 'wb') as f:
    f.write(json.dumps(jrow('ok.png')).replace('A red square.', 'MARK').encode().replace(b'MARK', LATIN1) + b'\n')
    f.write(json.dumps(jrow('ok.png')).encode() + b'\n')
with open(os.path.join(media, 'non-utf8.json'), 'wb') as f:
    f.write(b'[' + json.dumps(jrow('ok.png')).replace('A red square.', 'MARK').encode().replace(b'MARK', LATIN1) + b']\n')
