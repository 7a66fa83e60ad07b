#!/usr/bin/env bash
# Draws Minibar's 1024 px app icon and its monochrome tray glyph with ImageMagick (Debian's
# /usr/bin/convert: a stand-in may shadow it on PATH). Re-run, then `npx tauri icon`, to change them.
set -euo pipefail
cd "$(dirname "$0")"
IM=${IM:-/usr/bin/convert}
# App icon: a rounded square in a blue-violet gradient holding a white speech bubble with three bars.
"$IM" -size 1024x1024 xc:none \
  \( -size 1024x1024 gradient:'#4f7cff'-'#7a3df0' \) \
  \( -size 1024x1024 xc:none -fill white -draw 'roundrectangle 64,64 960,960 200,200' \) \
  -delete 0 -compose DstIn -composite \
  -fill white -draw 'roundrectangle 232,262 792,682 90,90' \
  -draw 'polygon 330,660 300,810 470,680' \
  -fill '#5b6cff' \
  -draw 'roundrectangle 322,372 702,412 20,20' \
  -draw 'roundrectangle 322,452 622,492 20,20' \
  -draw 'roundrectangle 322,532 542,572 20,20' \
  app-icon.png
# Tray glyph: the same bubble in black on transparent, bars cut out (a macOS template image).
"$IM" -size 64x64 xc:none -fill black \
  -draw 'roundrectangle 6,8 58,46 10,10' -draw 'polygon 14,44 11,58 28,45' \
  -fill none -stroke none \
  \( -size 64x64 xc:none -fill black \
     -draw 'rectangle 16,18 46,21' -draw 'rectangle 16,25 40,28' -draw 'rectangle 16,32 34,35' \) \
  -compose DstOut -composite ../tray-template.png
