% rebase('layout', title='Upload images', refresh=None)
<h2>Upload images</h2>
<form id="upload" method="post" action="/upload" enctype="multipart/form-data">
  <input type="hidden" name="csrf" value="{{csrf}}">
  <label>Images <input type="file" name="file" accept="image/*" multiple required></label>
  <button type="submit">Upload</button>
</form>
<p class="note">Each file is stored once, by its content, and queued for recognition.</p>
